# SPDX-License-Identifier: BSL-1.0
"""GDB commands for programs that use kaa: list the coroutines, show their stacks.

Load it with `source <prefix>/share/kaa/gdb/kaa_gdb.py` (or put that line in
~/.gdbinit), in a live process or a core file:

  kaa coroutines   every live coroutine of the loop thread: number, name,
                   state (running / suspended / time slice), creation site,
                   and where a suspended one is stopped (its first frame
                   outside kaa and Boost)
  kaa bt N         the call stack of suspended coroutine N, from its
                   suspension point down to its first frame

The script needs no debug information: libkaa publishes a plain global,
`kaa_gdb_anchor` (src/coroutine.cpp), with the address of the loop thread's
registry of coroutines and the offsets of the fields it reads. A suspended
coroutine's registers are read from its saved Boost.Context fcontext (x86-64
System V, the layout of jump_fcontext in Boost 1.81) by an unwinder that
stands in for the caller of the selected thread's innermost frame while
`kaa bt` runs.
"""
import os
import struct

import gdb
import gdb.unwinder

ANCHOR_VERSION = 1
# jump_fcontext (jump_x86_64_sysv_elf_gas.S, Boost 1.81) pushes, below its
# return address: mxcsr/x87 control word at +0x0, (stack guard at +0x8),
# r12 +0x10, r13 +0x18, r14 +0x20, r15 +0x28, rbx +0x30, rbp +0x38; the return
# address is at +0x40 and the stack pointer after the return is fctx + 0x48.
FCONTEXT_REGS = (("r12", 0x10), ("r13", 0x18), ("r14", 0x20), ("r15", 0x28), ("rbx", 0x30), ("rbp", 0x38))
FCONTEXT_RIP = 0x40
FCONTEXT_SIZE = 0x48


def _internal(frame):
    """Whether a frame is kaa's, the standard library's or Boost's own (skipped
    when naming where a coroutine is stopped). Judged by its source file: with
    line tables only (-g1), inlined frames carry no qualified names."""
    sal = frame.find_sal()
    if sal.symtab is None:
        return True
    path = sal.symtab.fullname()
    if "/include/kaa/" in path or path.startswith(("/usr/include/", "/usr/lib/")):
        return True
    directory, _, _ = path.rpartition("/")
    return directory.endswith("/src") and os.path.isdir(directory[: -len("src")] + "include/kaa")


def _inferior():
    return gdb.selected_inferior()


def _read(addr, size):
    return bytes(_inferior().read_memory(addr, size))


def _u64(addr):
    return struct.unpack("<Q", _read(addr, 8))[0]


def _u32(addr):
    return struct.unpack("<I", _read(addr, 4))[0]


def _u8(addr):
    return _read(addr, 1)[0]


def _cstring(addr, limit=512):
    if not addr:
        return ""
    out = bytearray()
    while len(out) < limit:
        chunk = _read(addr + len(out), 64)
        end = chunk.find(b"\0")
        if end >= 0:
            out += chunk[:end]
            break
        out += chunk
    return out.decode("utf-8", "replace")


class Anchor:
    FIELDS = ("registry_head", "next", "running", "waiting_on", "self", "name", "file", "line", "function_size",
              "function_data")

    def __init__(self):
        try:
            sym = gdb.parse_and_eval("(unsigned long)&kaa_gdb_anchor")
        except gdb.error:
            raise gdb.GdbError("kaa: no kaa_gdb_anchor in this program (is it linked with libkaa?)")
        base = int(sym)
        if _read(base, 8) != b"kaa-gdb\0":
            raise gdb.GdbError("kaa: kaa_gdb_anchor does not look like kaa's (a different libkaa version?)")
        version = _u64(base + 8)
        if version != ANCHOR_VERSION:
            raise gdb.GdbError("kaa: this script reads layout %d, the program has layout %d; use the "
                               "kaa_gdb.py installed with the program's libkaa" % (ANCHOR_VERSION, version))
        self.registry = _u64(base + 16)
        self.loop_tid = _u64(base + 24)
        for i, name in enumerate(self.FIELDS):
            setattr(self, name, _u64(base + 32 + 8 * i))


class Coroutine:
    def __init__(self, anchor, index, addr):
        self.index = index
        self.addr = addr
        name_ptr = _u64(addr + anchor.name)
        if not name_ptr:
            # Every live coroutine has one: its memory (the top of its stack)
            # is missing, as in a core written by gdb's generate-core-file on
            # Linux >= 6.13, which skips every mapping that holds a guard
            # region (MADV_GUARD_INSTALL, the kind of guard kaa's stacks use).
            raise gdb.GdbError(
                "kaa: coroutine #%d at 0x%x is not in this core file (its stack was left out; gdb's "
                "generate-core-file cannot read stacks with guard regions, Linux >= 6.13). Take the core "
                "with the kernel instead: `ulimit -c unlimited`, then `kill -ABRT <pid>` (or `signal SIGABRT` "
                "in gdb)" % (index, addr))
        name = _cstring(name_ptr)
        size = _u64(addr + anchor.function_size)
        data = _u64(addr + anchor.function_data)
        function = _read(data, min(size, 1024)).decode("utf-8", "replace") if data and size else ""
        # An unnamed coroutine carries the placeholder "coroutine" and is
        # called after its callable, as kaa::dump() does.
        self.name = name if name and name != "coroutine" else (function or "coroutine")
        self.file = _cstring(_u64(addr + anchor.file))
        self.line = _u32(addr + anchor.line)
        running = _u8(addr + anchor.running)
        waiting = _u64(addr + anchor.waiting_on)
        self.state = "running" if running else ("suspended" if waiting else "time slice")
        self.fctx = None if running else _u64(addr + anchor.self)

    def site(self):
        # Options default-constructed as a variable record their struct's
        # header, which says nothing (as kaa::dump() judges it).
        if not self.line or self.file.endswith(("kaa/coroutine.hpp", "kaa/threaded.hpp", "kaa/timer.hpp")):
            return "(no creation site)"
        return "started at %s:%d" % (self.file.rsplit("/", 1)[-1], self.line)


def coroutines():
    anchor = Anchor()
    if not anchor.registry:
        return anchor, []
    out = []
    seen = set()
    addr = _u64(anchor.registry + anchor.registry_head)
    while addr and addr not in seen and len(out) < 100000:
        seen.add(addr)
        out.append(Coroutine(anchor, len(out) + 1, addr))
        addr = _u64(addr + anchor.next)
    return anchor, out


class FrameId:
    """A frame's identity for create_unwind_info() (gdb 14 has gdb.unwinder.FrameId; 13 takes any such object)."""

    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


class CoroutineUnwinder(gdb.unwinder.Unwinder):
    """While `fctx` is set: the innermost frame's caller is the coroutine."""

    def __init__(self):
        super().__init__("kaa-coroutine")
        self.fctx = None

    def __call__(self, pending_frame):
        if self.fctx is None or pending_frame.level() != 0:
            return None
        fctx = self.fctx
        sp = pending_frame.read_register("rsp")
        pc = pending_frame.read_register("rip")
        info = pending_frame.create_unwind_info(FrameId(sp, pc))
        u64 = gdb.lookup_type("unsigned long")
        for reg, off in FCONTEXT_REGS:
            info.add_saved_register(reg, gdb.Value(_u64(fctx + off)).cast(u64))
        info.add_saved_register("rip", gdb.Value(_u64(fctx + FCONTEXT_RIP)).cast(u64))
        info.add_saved_register("rsp", gdb.Value(fctx + FCONTEXT_SIZE).cast(u64))
        return info


_UNWINDER = CoroutineUnwinder()
gdb.unwinder.register_unwinder(None, _UNWINDER, replace=True)


def _check_arch():
    arch = gdb.selected_frame().architecture().name()
    if "x86-64" not in arch:
        raise gdb.GdbError("kaa bt: reads Boost.Context's x86-64 context layout; this is %s" % arch)


def coroutine_frames(c, limit=64):
    """The frames of suspended coroutine `c`, innermost first."""
    if c.fctx is None:
        return []
    _check_arch()
    _UNWINDER.fctx = c.fctx
    gdb.invalidate_cached_frames()
    frames = []
    try:
        f = gdb.newest_frame().older()  # the newest is the thread's own
        while f is not None and len(frames) < limit:
            frames.append(f)
            f = f.older()
    finally:
        pass
    return frames


def _release():
    _UNWINDER.fctx = None
    gdb.invalidate_cached_frames()


def _describe(f):
    name = f.name() or "??"
    sal = f.find_sal()
    where = ""
    if sal.symtab is not None:
        where = " at %s:%d" % (sal.symtab.filename.rsplit("/", 1)[-1], sal.line)
    return "0x%016x in %s%s" % (f.pc(), name, where)


def resume_point(c):
    """Where a suspended coroutine is stopped: its first frame outside kaa."""
    try:
        frames = coroutine_frames(c)
        for f in frames:
            if not _internal(f):
                return _describe(f)
        return _describe(frames[0]) if frames else "?"
    except gdb.error as e:
        return "? (%s)" % e
    finally:
        _release()


class KaaPrefix(gdb.Command):
    """kaa commands: kaa coroutines, kaa bt N."""

    def __init__(self):
        super().__init__("kaa", gdb.COMMAND_STACK, prefix=True)


class KaaCoroutines(gdb.Command):
    """List the live kaa coroutines: name, state, creation site, resume point."""

    def __init__(self):
        super().__init__("kaa coroutines", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        anchor, cs = coroutines()
        if not cs:
            print("no live kaa coroutines")
            return
        print("%d kaa coroutine(s) on the loop thread (LWP %d):" % (len(cs), anchor.loop_tid))
        for c in cs:
            print("#%d '%s' %s, %s" % (c.index, c.name, c.state, c.site()))
            if c.state == "running":
                print("    running: its frames are the loop thread's own (bt in that thread)")
            else:
                print("    stopped in %s" % resume_point(c))


class KaaBt(gdb.Command):
    """kaa bt N: the call stack of suspended kaa coroutine N (numbers from `kaa coroutines`)."""

    def __init__(self):
        super().__init__("kaa bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        try:
            n = int(arg.strip())
        except ValueError:
            raise gdb.GdbError("usage: kaa bt N (N from `kaa coroutines`)")
        _, cs = coroutines()
        if not 1 <= n <= len(cs):
            raise gdb.GdbError("kaa bt: no coroutine #%d (there are %d; see `kaa coroutines`)" % (n, len(cs)))
        c = cs[n - 1]
        if c.fctx is None:
            raise gdb.GdbError("kaa bt: coroutine #%d '%s' is running: its frames are the loop thread's own; "
                               "use bt in that thread" % (n, c.name))
        print("coroutine #%d '%s' %s, %s" % (n, c.name, c.state, c.site()))
        try:
            for i, f in enumerate(coroutine_frames(c)):
                print("#%-3d %s" % (i, _describe(f)))
        finally:
            _release()


KaaPrefix()
KaaCoroutines()
KaaBt()
