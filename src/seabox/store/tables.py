"""The SQLAlchemy table definitions: the single source of truth for the schema (migrations mirror it)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()
# 64-bit on PostgreSQL; on SQLite INTEGER is already 64-bit, and only INTEGER PRIMARY KEY autoincrements.
BigInt = BigInteger().with_variant(Integer(), "sqlite")

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("idx", Integer, nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("default_runtime", String(16), nullable=True),  # None: the operator's default
    Column("allowed_runtimes", JSON, nullable=True),  # None: every class the operator allows
)

# the operator's quota limits for one tenant where they differ from the defaults in config.toml
tenant_quotas = Table(
    "tenant_quotas",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(32), primary_key=True),  # one of model.quota.QUOTA_KEYS
    Column("value", Integer, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

containers = Table(
    "containers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("name", String(63), nullable=False),
    Column("node", String(63), nullable=True),
    Column("ip", String(45), nullable=True),
    Column("spec", JSON, nullable=False),
    Column("status", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("image_id", String(80), nullable=True, index=True),  # spec.image_id: queries never look into JSON
    # the quota it counts against: containers, or function_containers for a function's call or replica
    Column("quota_key", String(32), nullable=False, server_default="containers"),
    UniqueConstraint("tenant_id", "name", name="uq_container_name"),
    UniqueConstraint("tenant_id", "ip", name="uq_container_ip"),
)

images = Table(
    "images",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id"), primary_key=True),
    Column("ref", String(512), primary_key=True),  # canonical reference, or the image id when untagged
    Column("image_id", String(80), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
)

volumes = Table(
    "volumes",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id"), primary_key=True),
    Column("name", String(255), primary_key=True),  # model.container.VOLUME_NAME_RE
    Column("size", BigInt, nullable=False),  # bytes
    Column("labels", JSON, nullable=False),
    Column("node", String(63), nullable=False),
    Column("created_at", Float, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInt, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False, index=True),
    Column("tenant_id", String(32), nullable=False, index=True),
    Column("type", String(16), nullable=False),
    Column("action", String(32), nullable=False),
    Column("resource_id", String(128), nullable=False),
    # an import names every tag of the archive; SQLite keeps its VARCHAR(512), whose length it never enforced
    Column("resource_name", Text().with_variant(String(512), "sqlite"), nullable=False),
    Column("attributes", JSON, nullable=False),
)

nodes = Table(
    "nodes",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("address", String(255), nullable=False),  # where servers reach the node (its advertised address)
    Column("credential_hash", String(64), nullable=True, unique=True),  # None: the embedded server's own node
    Column("link_secret", String(128), nullable=True),  # what servers present to the node's link listener
    Column("memory_bytes", BigInteger, nullable=False),
    Column("cpus", Integer, nullable=False),
    Column("schedule", String(16), nullable=False),  # ready | cordoned | draining (down is a heartbeat's age)
    Column("registered_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)

join_tokens = Table(
    "join_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_by", String(63), nullable=True),  # the node that joined with it (a token joins one node)
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("expires_at", Float, nullable=False),  # epoch seconds by the database's clock
    Column("generation", BigInt, nullable=False),  # grows each time the lease changes hands (a fencing token)
)

exec_sessions = Table(
    "exec_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("container_id", String(64), ForeignKey("containers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("config", JSON, nullable=False),  # model.exec.ExecConfig
    Column("state", String(16), nullable=False),  # created | running | exited
    Column("exit_code", Integer, nullable=True),
    Column("server", String(128), nullable=True),  # the server relaying the process while it runs
    Column("lease_until", Float, nullable=True),  # database clock; past it, that server is taken to be gone
    Column("height", Integer, nullable=True),  # the terminal size last asked for
    Column("width", Integer, nullable=True),
    Column("created_at", Float, nullable=False),
)

fips = Table(
    "fips",
    metadata,
    Column("address", String(15), primary_key=True),  # dotted IPv4, unique across every tenant
    Column("tenant_id", String(32), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("name", String(63), nullable=True),  # unique within the tenant; works wherever the address does
    # the container it is attached to (one floating IP per container); removing the container detaches it
    Column("container_id", String(64), ForeignKey("containers.id", ondelete="SET NULL"), nullable=True),
    Column("created_at", Float, nullable=False),
    # or the service it is attached to (one floating IP per service; never both); removing the service detaches it
    Column("service_id", String(32), ForeignKey("services.id", ondelete="SET NULL", name="fk_fips_service"),
           nullable=True),
    UniqueConstraint("tenant_id", "name", name="uq_fip_name"),
    UniqueConstraint("container_id", name="uq_fip_container"),
    UniqueConstraint("service_id", name="uq_fip_service"),
)

security_groups = Table(
    "security_groups",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id"), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("description", Text, nullable=False),
    Column("rules", JSON, nullable=False),  # [model.security_group.SecurityGroupRule]
    Column("generation", BigInt, nullable=False),  # grows with every update
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# which containers are in which groups (also in each container's spec.security_groups, written together):
# the database refuses a member of a group that does not exist and a group removed while it has members
security_group_members = Table(
    "security_group_members",
    metadata,
    Column("container_id", String(64), ForeignKey("containers.id", ondelete="CASCADE"), primary_key=True),
    Column("group_name", String(63), primary_key=True),
    Column("tenant_id", String(32), nullable=False),
    ForeignKeyConstraint(["tenant_id", "group_name"], ["security_groups.tenant_id", "security_groups.name"],
                         name="fk_security_group_members_group"),
    Index("ix_security_group_members_group", "tenant_id", "group_name"),
)

# load-balanced services: a virtual IP from the top of the tenant's subnet, in front of replica containers
services = Table(
    "services",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("name", String(63), nullable=False),
    Column("vip", String(15), nullable=False),
    # the source of its FIP's connections to replicas on other nodes (node/network/lb_port.py)
    Column("snat_ip", String(15), nullable=True),
    Column("spec", JSON, nullable=False),  # model.service.ServiceSpec
    Column("status", JSON, nullable=False),  # model.service.ServiceStatus
    Column("created_at", Float, nullable=False),
    UniqueConstraint("tenant_id", "name", name="uq_service_name"),
    UniqueConstraint("tenant_id", "vip", name="uq_service_vip"),
    UniqueConstraint("tenant_id", "snat_ip", name="uq_service_snat_ip"),
)

# which containers are a service's replicas; removing the service (rm --keep) leaves them as plain containers
service_replicas = Table(
    "service_replicas",
    metadata,
    Column("container_id", String(64), ForeignKey("containers.id", ondelete="CASCADE"), primary_key=True),
    Column("service_id", String(32), ForeignKey("services.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("generation", BigInt, nullable=False),  # the service spec generation it runs
    Column("draining_since", Float, nullable=True),  # out of the backends since (epoch seconds); then removed
)

# crons ------------------------------------------------------------------------------------------
crons = Table(
    "crons",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id"), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("spec", JSON, nullable=False),  # model.cron.CronSpec
    Column("suspended", Boolean, nullable=False),
    # firings up to here are recorded (run, skipped or missed); the controller moves it forward, compare-and-set
    Column("last_fired", Float, nullable=False),
    Column("next_at", Float, nullable=True, index=True),  # the next firing (None while suspended)
    Column("created_at", Float, nullable=False),
)

# each firing of a cron, once: (cron, scheduled_at) is unique, so two servers never record one twice
cron_runs = Table(
    "cron_runs",
    metadata,
    Column("id", BigInt, primary_key=True, autoincrement=True),
    Column("tenant_id", String(32), nullable=False),
    Column("cron_name", String(63), nullable=False),
    Column("scheduled_at", Float, nullable=False),
    Column("trigger", String(16), nullable=False),  # schedule | catch-up | manual
    Column("status", String(16), nullable=False),  # model.cron.RunStatus
    Column("container_name", String(63), nullable=True),
    Column("container_id", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),  # None: its container is still to be wound up
    Column("exit_code", Integer, nullable=True),
    Column("log_tail", Text, nullable=False),
    Column("message", Text, nullable=False),
    ForeignKeyConstraint(["tenant_id", "cron_name"], ["crons.tenant_id", "crons.name"], ondelete="CASCADE",
                         name="fk_cron_runs_cron"),
    UniqueConstraint("tenant_id", "cron_name", "scheduled_at", name="uq_cron_run_time"),
    Index("ix_cron_runs_open", "finished_at"),
)

# functions ---------------------------------------------------------------------------------------
functions = Table(
    "functions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id"), nullable=False),
    Column("name", String(63), nullable=False),
    Column("spec", JSON, nullable=False),  # model.function.FunctionSpec
    Column("secret", String(64), nullable=False),  # the credential of its public call URL, shown to its tenant
    Column("secret_hash", String(64), nullable=False, unique=True),  # sha256(secret): what a public call looks up
    Column("generation", BigInt, nullable=False),  # grows with every update
    Column("created_at", Float, nullable=False),
    # when a call of it last started or ended, on any server: the idle clock of scale-to-zero (None: never called)
    Column("last_call_at", Float, nullable=True),
    UniqueConstraint("tenant_id", "name", name="uq_function_name"),
)

function_calls = Table(
    "function_calls",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("function_id", String(32), ForeignKey("functions.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("tenant_id", String(32), nullable=False, index=True),
    Column("sync", Integer, nullable=False),  # 1: the caller waits for the reply (it is not kept)
    Column("status", String(16), nullable=False),  # queued | running | done | failed | timed-out
    Column("request_size", Integer, nullable=False),
    Column("result_status", Integer, nullable=True),  # the HTTP status the call answers
    Column("result_body", LargeBinary, nullable=True),  # at most model.function.MAX_BODY
    Column("result_headers", JSON, nullable=True),
    Column("error", Text, nullable=True),  # why it failed or timed out
    Column("container", String(64), nullable=True),  # the container that served it
    Column("log_tail", Text, nullable=True),  # the end of its output, for `func logs --call`
    Column("server", String(128), nullable=False),  # the server running it
    Column("lease_until", Float, nullable=False),  # past it (not renewed), that server is taken to be gone
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("read_at", Float, nullable=True),  # when its result was read (it is dropped then)
    Column("expires_at", Float, nullable=False, index=True),
    # its place in its tenant's line: after every call of the tenant queued or running when it arrived
    Column("arrival", BigInt, nullable=False, server_default="0"),
    Index("ix_function_calls_tenant_status", "tenant_id", "status"),
)

# billing -----------------------------------------------------------------------------------------
# The meter's ledger: one row per span a resource was billable (a container's run from start to its
# end, a rootfs or volume from create to remove, a FIP held, a service up), written in the transaction
# of the change that opened or closed it. Times are integer milliseconds, so that rating is exact.
usage_intervals = Table(
    "usage_intervals",
    metadata,
    Column("id", BigInt, primary_key=True, autoincrement=True),
    Column("tenant_id", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # container | rootfs | volume | fip | service
    Column("resource_id", String(128), nullable=False),
    Column("resource_name", String(255), nullable=False),
    Column("meter", String(32), nullable=False),  # a price book key: container.s4, storage, fip, service
    Column("quantity", String(40), nullable=False),  # a Decimal: GB for storage, 1 otherwise
    Column("start_ms", BigInt, nullable=False),
    Column("end_ms", BigInt, nullable=True),  # None: still open (billed up to now)
    Column("minimum_ms", BigInt, nullable=False),  # a container start bills at least this long
    Column("lost", Boolean, nullable=False),  # closed at its node's last heartbeat; a later report amends it
    Index("ix_usage_tenant_end", "tenant_id", "end_ms"),
    Index("ix_usage_resource", "kind", "resource_id"),
)

# The day rollup of closed intervals, kept in step with each interval's end (billing/tally.py): an
# interval's billed span cut at UTC midnights into pieces, and each day's billed ms summed per
# resource and meter, so a query over whole days reads one row per resource a day, and only the
# pieces of the days it cuts.
usage_pieces = Table(
    "usage_pieces",
    metadata,
    Column("id", BigInt, primary_key=True, autoincrement=True),
    Column("interval_id", BigInt, nullable=False, index=True),
    Column("tenant_id", String(32), nullable=False),
    Column("day_ms", BigInt, nullable=False),  # the UTC midnight the piece's day begins at
    Column("kind", String(16), nullable=False),
    Column("resource_id", String(128), nullable=False),
    Column("resource_name", String(255), nullable=False),
    Column("meter", String(32), nullable=False),
    Column("quantity", String(40), nullable=False),
    Column("start_ms", BigInt, nullable=False),
    Column("end_ms", BigInt, nullable=False),  # the billed end: the minimum applied
    Index("ix_usage_pieces_tenant_day", "tenant_id", "day_ms"),
)

usage_days = Table(
    "usage_days",
    metadata,
    Column("tenant_id", String(32), primary_key=True),
    Column("day_ms", BigInt, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("resource_id", String(128), primary_key=True),
    Column("resource_name", String(255), primary_key=True),
    Column("meter", String(32), primary_key=True),
    Column("quantity", String(40), primary_key=True),
    Column("billed_ms", BigInt, nullable=False),
)

# price book versions: each in force from effective_at until the next one's
price_books = Table(
    "price_books",
    metadata,
    Column("id", BigInt, primary_key=True, autoincrement=True),
    Column("effective_at", Float, nullable=False, unique=True),
    Column("prices", JSON, nullable=False),  # meter -> Decimal text, the whole book
    Column("created_at", Float, nullable=False),
)

# issued invoices: written once on the first pass after their month ends, never changed afterwards
invoices = Table(
    "invoices",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id"), primary_key=True),
    Column("month", String(7), primary_key=True),  # YYYY-MM
    Column("issued_at", Float, nullable=False),
    Column("lines", JSON, nullable=False),
    Column("total", String(40), nullable=False),
)

# a tenant's optional monthly spend limit: past it new creates are refused (402), and with stop_running
# what runs is stopped
spend_limits = Table(
    "spend_limits",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("monthly", String(40), nullable=False),  # dollars, a Decimal
    Column("stop_running", Boolean, nullable=False),
)
