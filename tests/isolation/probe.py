"""The hostile tenant's probe: a Python script run inside a container that tries each escape and reports how it ended."""

from __future__ import annotations

# Prints one Python literal: each attempt's outcome is "ok" or the errno name it failed with.
# argv[1] is the host pid of another tenant's container (a ptrace target that must stay out of reach),
# argv[2] the host's data dir (which must not exist in the container's view).
PROBE = r"""
import ctypes, errno, glob, os, platform, socket, stat, sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NUMBERS = {
    "x86_64": dict(keyctl=250, add_key=248, bpf=321, perf_event_open=298, userfaultfd=323, mount=165,
                   unshare=272, setns=308, ptrace=101, syslog=103),
    "aarch64": dict(keyctl=219, add_key=217, bpf=280, perf_event_open=241, userfaultfd=282, mount=40,
                    unshare=97, setns=268, ptrace=117, syslog=116),
}[platform.machine()]


def name(code):
    return errno.errorcode.get(code, str(code))


def call(syscall, *args):
    argv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return "ok" if libc.syscall(ctypes.c_long(NUMBERS[syscall]), *argv) >= 0 else name(ctypes.get_errno())


def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return name(exc.errno)


def write(path, data):
    def action():
        with open(path, "w") as f:
            f.write(data)
    return attempt(action)


status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
victim = int(sys.argv[1])
r = {}
r["uid_map"] = open("/proc/self/uid_map").read().split()
r["seccomp"] = status.get("Seccomp", "").strip()
r["no_new_privs"] = status.get("NoNewPrivs", "").strip()
r["cap_eff"] = int(status["CapEff"].strip(), 16)
r["keyctl"] = call("keyctl", 0, -3, 0)
r["add_key"] = call("add_key", b"user", b"k", b"v", 1, -3)
r["bpf"] = call("bpf", 0, 0, 0)
r["perf_event_open"] = call("perf_event_open", 0, 0, -1, -1, 0)
r["userfaultfd"] = call("userfaultfd", 0)
r["mount_tmpfs"] = call("mount", b"none", b"/mnt", b"tmpfs", 0, 0)
r["mount_cgroup"] = call("mount", b"cgroup", b"/mnt", b"cgroup", 0, b"memory")
r["unshare_user"] = call("unshare", 0x10000000)
r["unshare_mount"] = call("unshare", 0x20000)
fd = os.open("/proc/self/ns/net", os.O_RDONLY)
r["setns"] = call("setns", fd, 0)
os.close(fd)
r["ptrace_other_tenant"] = call("ptrace", 16, victim, 0, 0)
buf = ctypes.create_string_buffer(1 << 16)
got = libc.syscall(ctypes.c_long(NUMBERS["syslog"]), ctypes.c_long(3), buf, ctypes.c_long(1 << 16))
r["syslog"] = "ok" if got >= 0 else name(ctypes.get_errno())
r["syslog_text"] = buf.value[:4096].decode(errors="replace") if got > 0 else ""
r["mknod_block"] = attempt(lambda: os.mknod("/tmp/hostdisk", 0o600 | stat.S_IFBLK, os.makedev(254, 0)))
r["open_block"] = attempt(lambda: os.close(os.open("/tmp/hostdisk", os.O_RDONLY))) if os.path.exists("/tmp/hostdisk") else "ENOENT"
r["mknod_char_mem"] = attempt(lambda: os.mknod("/tmp/mem", 0o600 | stat.S_IFCHR, os.makedev(1, 1)))
r["open_char_mem"] = attempt(lambda: os.close(os.open("/tmp/mem", os.O_RDONLY))) if os.path.exists("/tmp/mem") else "ENOENT"
r["proc_sys"] = write("/proc/sys/vm/drop_caches", "3")
r["core_pattern"] = write("/proc/sys/kernel/core_pattern", "|/tmp/escape")
r["sysrq_trigger"] = write("/proc/sysrq-trigger", "h")
r["sys_write"] = write("/sys/kernel/mm/transparent_hugepage/enabled", "never") if os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled") else "ENOENT"
limits = glob.glob("/sys/fs/cgroup/memory/**/memory.limit_in_bytes", recursive=True) or glob.glob("/sys/fs/cgroup/**/memory.max", recursive=True)
r["cgroup_limit"] = write(limits[0], "9223372036854771712") if limits else "ENOENT"
agents = glob.glob("/sys/fs/cgroup/*/release_agent") + glob.glob("/sys/fs/cgroup/release_agent")
r["release_agent"] = write(agents[0], "/tmp/escape") if agents else "ENOENT"
r["kmsg"] = attempt(lambda: open("/dev/kmsg").close())
r["raw_socket"] = attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP).close())
r["mountinfo"] = open("/proc/self/mountinfo").read()
r["proc_pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
r["proc_version"] = open("/proc/version").read()
r["host_data_dir"] = attempt(lambda: os.listdir(sys.argv[2]))
print(repr(r), flush=True)
"""
