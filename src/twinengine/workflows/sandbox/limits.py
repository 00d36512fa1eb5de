"""How much of the machine one sandbox may take: processes, memory, file size, CPU time.

:func:`limits_for` turns the server's settings and a command's policy into
:class:`Limits`, which :meth:`Limits.apply` sets on the sandbox's first process while
bubblewrap holds it (before anything of the command runs; every process of the sandbox
inherits them):

- ``RLIMIT_NPROC`` — processes and threads of the sandbox's user (``sandbox_processes``).
  It is counted per user, so it bounds one sandbox only when each runs as a user of its
  own (``sandbox_uids``, a root server) or in a user namespace of its own (a server that
  is not root); with ``sandbox_uids = none`` it is not set (it would be shared by all);
- ``RLIMIT_AS`` — the address space of each process: ``sandbox_memory_mb`` (default: the
  machine's memory), the server's cap that no mapping escapes;
- ``RLIMIT_DATA`` — the memory each process allocates (its heap and private writable
  mappings, not what runtimes such as the JVM or V8 only reserve): the tool's ``ramMax``
  when it gives one;
- ``RLIMIT_FSIZE`` — the largest file a process writes (``sandbox_file_mb``);
- ``RLIMIT_CPU`` — CPU seconds of each process when the tool has a time limit (its
  ``ToolTimeLimit`` times its cores, then SIGKILL a few seconds later);
- ``RLIMIT_CORE`` 0 (no core files), and ``oom_score_adj`` 1000: when memory runs out,
  the kernel kills sandboxed processes before the server or its database.

A limit is never raised above what the server itself has.
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass

from twinengine.workflows.sandbox.policy import HostView, SandboxPolicy

MIB = 1 << 20
CPU_GRACE = 5  # seconds between SIGXCPU and SIGKILL


@dataclass(frozen=True)
class Limits:
    """The rlimits of one sandbox (0: not set)."""

    processes: int = 0
    memory: int = 0  # bytes of address space per process
    data: int = 0  # bytes of data (heap, private writable mappings) per process
    file_size: int = 0  # bytes
    cpu: int = 0  # seconds per process

    def apply(self, pid: int) -> None:
        """Set the limits on process ``pid`` (inherited by what it starts)."""
        wanted = [(resource.RLIMIT_CORE, 0, 0)]
        if self.processes:
            wanted.append((resource.RLIMIT_NPROC, self.processes, self.processes))
        if self.memory:
            wanted.append((resource.RLIMIT_AS, self.memory, self.memory))
        if self.data:
            wanted.append((resource.RLIMIT_DATA, self.data, self.data))
        if self.file_size:
            wanted.append((resource.RLIMIT_FSIZE, self.file_size, self.file_size))
        if self.cpu:
            wanted.append((resource.RLIMIT_CPU, self.cpu, self.cpu + CPU_GRACE))
        for which, soft, hard in wanted:
            _, have = resource.getrlimit(which)  # what bubblewrap inherited from this process
            if have != resource.RLIM_INFINITY:
                soft, hard = min(soft, have), min(hard, have)
            resource.prlimit(pid, which, (soft, hard))
        try:
            with open(f"/proc/{pid}/oom_score_adj", "w") as adj:
                adj.write("1000")
        except PermissionError:
            if os.geteuid() == 0:
                raise  # a server that is not root may not write another's process' file


def machine_memory() -> int:
    """Bytes of physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def limits_for(view: HostView, policy: SandboxPolicy) -> Limits:
    """The limits of a command with ``policy`` on a server with ``view``."""
    per_user = view.user is None or view.uids is not None
    return Limits(
        processes=view.processes if per_user else 0,
        memory=view.memory_mb * MIB or machine_memory(),
        data=policy.memory_mb * MIB,
        file_size=view.file_mb * MIB,
        cpu=math.ceil(policy.cpu_seconds) if policy.cpu_seconds else 0,
    )
