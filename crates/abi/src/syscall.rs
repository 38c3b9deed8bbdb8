//! System call numbers and their register conventions.
//!
//! `syscall` with RAX = number, arguments in RDI, RSI, RDX, R10, R8, R9. The result comes
//! back in RAX: a non-negative value on success, `-(Error as i64)` on failure
//! (see `Error::from_return_value`). RCX and R11 are clobbered (SYSCALL/SYSRET use them);
//! every other register is preserved.

use crate::async_message::AsyncMessage;
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::host_command::{Outcome, RequestId};
use crate::message::{Message, RegisterMessage, REGISTER_PAYLOAD_WORDS};
use crate::pm::{ImageFlags, IpcAllow, Priority};
use crate::user_memory::{Pod, UserPtr, UserSlice};
use crate::vm::{MapFlags, PageRange, Pid, ProcessPair, SharedRanges};

/// A value carried in system-call argument registers: decoded once by the kernel at the
/// boundary, encoded by user/rt from the same definition.
pub trait Argument: Sized {
    /// How many consecutive registers it takes.
    const REGISTERS: usize;
    /// Decodes from `registers[..REGISTERS]`; bad values are refused here.
    fn decode(registers: &[u64]) -> Result<Self, Error>;
    /// Encodes into `registers[..REGISTERS]`.
    fn encode(&self, registers: &mut [u64]);
}

impl Argument for u64 {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        Ok(registers[0])
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = *self;
    }
}

/// Any value: whether it names a live thread is the kernel's to decide (`BadEndpoint`,
/// `DeadEndpoint`), not the decoder's.
impl Argument for Endpoint {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        Ok(Endpoint(registers[0]))
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = self.0;
    }
}

/// One register: the address, checked by `UserPtr::new`.
impl<T: Pod> Argument for UserPtr<T> {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        UserPtr::new(registers[0])
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = self.address();
    }
}

/// Two registers: the address, then the number of elements; checked by `UserSlice::new`.
impl<T: Pod> Argument for UserSlice<T> {
    const REGISTERS: usize = 2;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        UserSlice::new(registers[0], registers[1])
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = self.address();
        registers[1] = self.len() as u64;
    }
}

/// Four registers: the header (kind and tag), then the payload words (`RegisterMessage`).
/// Any values: the kernel refuses a kernel kind when it sends, as for a memory message.
impl Argument for RegisterMessage {
    const REGISTERS: usize = 1 + REGISTER_PAYLOAD_WORDS;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        Ok(RegisterMessage::from_registers([
            registers[0],
            registers[1],
            registers[2],
            registers[3],
        ]))
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[..1 + REGISTER_PAYLOAD_WORDS].copy_from_slice(&self.to_registers());
    }
}

/// A register the call does not use yet: it must be 0 (else `InvalidArgument`), so a later
/// meaning cannot be mistaken for today's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Reserved;

impl Argument for Reserved {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        if registers[0] != 0 {
            return Err(Error::InvalidArgument);
        }
        Ok(Reserved)
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = 0;
    }
}

/// Access rights of a memory grant: a non-empty subset of `grant_access::{READ, WRITE}`
/// (anything else is `InvalidArgument`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantAccess(u64);

impl GrantAccess {
    pub const READ: GrantAccess = GrantAccess(grant_access::READ);
    pub const WRITE: GrantAccess = GrantAccess(grant_access::WRITE);
    pub const READ_WRITE: GrantAccess = GrantAccess(grant_access::READ | grant_access::WRITE);

    /// Checks raw access bits.
    pub const fn new(bits: u64) -> Result<GrantAccess, Error> {
        if bits == 0 || bits & !(grant_access::READ | grant_access::WRITE) != 0 {
            return Err(Error::InvalidArgument);
        }
        Ok(GrantAccess(bits))
    }

    pub const fn bits(self) -> u64 {
        self.0
    }

    pub const fn allows_read(self) -> bool {
        self.0 & grant_access::READ != 0
    }

    pub const fn allows_write(self) -> bool {
        self.0 & grant_access::WRITE != 0
    }
}

impl Argument for GrantAccess {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        GrantAccess::new(registers[0])
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = self.0;
    }
}

/// The five registers after a kernel call's number. They stay raw only until the kernel
/// has checked the caller's kernel-call mask; then `KernelCallArgs::decode` types them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelCallRegisters(pub [u64; KERNEL_CALL_REGISTERS]);

/// Registers a kernel call's own arguments may use.
pub const KERNEL_CALL_REGISTERS: usize = 5;

impl Argument for KernelCallRegisters {
    const REGISTERS: usize = KERNEL_CALL_REGISTERS;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        let mut raw = [0; KERNEL_CALL_REGISTERS];
        raw.copy_from_slice(&registers[..KERNEL_CALL_REGISTERS]);
        Ok(KernelCallRegisters(raw))
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[..KERNEL_CALL_REGISTERS].copy_from_slice(&self.0);
    }
}

/// Whether arguments taking `used` registers fit in `available`.
const fn fits(used: usize, available: usize) -> bool {
    used <= available
}

/// Defines a call-number enum, one argument struct per call (decoded from and encoded into
/// the registers, fields in register order) and an enum of decoded calls: the one source
/// of numbers, names and argument layout for the kernel and user/rt.
macro_rules! calls {
    (
        $(#[$enum_meta:meta])*
        pub enum $Enum:ident;
        $(#[$args_meta:meta])*
        pub enum $Args:ident;
        registers: $N:expr;
        $(
            $(#[$meta:meta])*
            $Call:ident = $number:literal => $Struct:ident {
                $( $(#[$field_meta:meta])* $field:ident: $Type:ty ),* $(,)?
            }
        )*
    ) => {
        $(#[$enum_meta])*
        #[repr(u64)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $Enum {
            $( $(#[$meta])* $Call = $number, )*
        }

        impl $Enum {
            /// Every call, in number order.
            pub const ALL: &'static [$Enum] = &[$($Enum::$Call),*];
            /// Number of calls. Numbers need not be contiguous (kernel calls leave a gap
            /// for calls being added on other branches); every number is below 64, the
            /// width of a kernel-call mask.
            pub const COUNT: u64 = Self::ALL.len() as u64;

            pub const fn from_number(number: u64) -> Option<$Enum> {
                match number {
                    $( $number => Some($Enum::$Call), )*
                    _ => None,
                }
            }

            /// The call's name as written in the ABI.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $Enum::$Call => stringify!($Call), )*
                }
            }
        }

        $(
            #[doc = concat!("Arguments of `", stringify!($Enum), "::", stringify!($Call), "`, in register order.")]
            #[derive(Clone, Copy, Debug, PartialEq, Eq)]
            pub struct $Struct {
                $( $(#[$field_meta])* pub $field: $Type, )*
            }

            impl $Struct {
                /// The call these arguments belong to.
                pub const CALL: $Enum = $Enum::$Call;
                const _FITS: () = assert!(fits(0 $(+ <$Type as Argument>::REGISTERS)*, $N));

                /// Decodes the arguments from the raw registers.
                #[inline(always)]
                #[allow(unused_variables, unused_mut, unused_assignments)]
                pub fn decode(registers: &[u64; $N]) -> Result<Self, Error> {
                    let () = Self::_FITS;
                    let mut at = 0;
                    $(
                        let $field = <$Type as Argument>::decode(&registers[at..])?;
                        at += <$Type as Argument>::REGISTERS;
                    )*
                    Ok(Self { $($field),* })
                }

                /// Encodes the arguments into registers (unused ones are 0).
                #[inline(always)]
                #[allow(unused_variables, unused_mut, unused_assignments)]
                pub fn encode(&self) -> [u64; $N] {
                    let mut registers = [0; $N];
                    let mut at = 0;
                    $(
                        Argument::encode(&self.$field, &mut registers[at..]);
                        at += <$Type as Argument>::REGISTERS;
                    )*
                    registers
                }
            }
        )*

        $(#[$args_meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $Args {
            $( $Call($Struct), )*
        }

        impl $Args {
            /// Decodes call `call`'s arguments from the raw registers.
            #[inline(always)]
            pub fn decode(call: $Enum, registers: &[u64; $N]) -> Result<$Args, Error> {
                Ok(match call {
                    $( $Enum::$Call => $Args::$Call($Struct::decode(registers)?), )*
                })
            }

            /// The call.
            pub const fn call(&self) -> $Enum {
                match self {
                    $( $Args::$Call(_) => $Enum::$Call, )*
                }
            }
        }
    };
}

/// Argument registers of a system call (RDI, RSI, RDX, R10, R8, R9).
pub const SYSCALL_REGISTERS: usize = 6;

calls! {
    /// System call numbers.
    pub enum Syscall;
    /// A system call with its arguments decoded.
    pub enum SyscallArgs;
    registers: SYSCALL_REGISTERS;

    /// (text) → bytes taken. Writes UTF-8 text (at most 4096 bytes, else InvalidArgument;
    /// an invalid UTF-8 tail is cut) to the kernel console, one line per `\n`, prefixed
    /// with the caller's process name. One call prints at most 8 lines and 512 bytes and
    /// returns how many bytes it took (ending after a line or on a character boundary,
    /// never 0 for non-empty text): write the rest with further calls. The bound keeps
    /// every call's kernel time short. Until a tty server exists this is how programs print.
    DebugWrite = 0 => DebugWriteArgs { text: UserSlice<u8> }
    /// (dest, msg_ptr) → 0. Blocks until `dest` receives the message.
    Send = 1 => SendArgs { destination: Endpoint, message: UserPtr<Message> }
    /// (src or ANY, msg_ptr) → 0. Blocks until a message or notification arrives; the
    /// kernel writes it (with `source` filled in) to msg_ptr.
    Receive = 2 => ReceiveArgs { source: Endpoint, message: UserPtr<Message> }
    /// (dest, msg_ptr) → 0. Send, then receive the reply from `dest` into the same buffer.
    SendReceive = 3 => SendReceiveArgs { destination: Endpoint, message: UserPtr<Message> }
    /// (dest) → 0. Raises a notification at `dest`; never blocks; repeated notifications
    /// from one source coalesce until received.
    Notify = 4 => NotifyArgs { destination: Endpoint }
    /// (dest, msg_ptr) → 0 or NotReady. Delivers only if `dest` is already waiting for it.
    SendNonBlocking = 5 => SendNonBlockingArgs { destination: Endpoint, message: UserPtr<Message> }
    /// (table_ptr, count) → 0. Asynchronous sends from a table of `AsyncMessage` in the
    /// caller's memory (at most `MAX_ASYNC_ENTRIES`); the kernel updates each entry's flags
    /// and result as it delivers. The table must stay valid until every entry is DONE or
    /// the thread calls SendAsync again: a thread has one table, and a new call replaces
    /// the previous one (MINIX).
    SendAsync = 6 => SendAsyncArgs { table: UserSlice<AsyncMessage> }
    /// (entry, arg) → endpoint of the new thread in the caller's process. The thread starts
    /// at `entry` with RDI = arg, RSI = its endpoint, on a fresh stack (see `layout`).
    ThreadCreate = 7 => ThreadCreateArgs { entry: u64, argument: u64 }
    /// (code) → never returns. Ends the calling thread; the last thread ends the process.
    ThreadExit = 8 => ThreadExitArgs { code: u64 }
    /// (endpoint) → 0 in RAX and the exit code in RDX (so every `u64` code, even one that
    /// would read as an error code in RAX, comes back). Waits for a thread of the caller's
    /// process to exit.
    ThreadJoin = 9 => ThreadJoinArgs { thread: Endpoint }
    /// (status) → never returns. Ends every thread of the calling process.
    ProcessExit = 10 => ProcessExitArgs { status: u64 }
    /// () → 0. Gives up the rest of the quantum.
    Yield = 11 => YieldArgs {}
    /// (ns) → 0. Sleeps at least `ns` nanoseconds.
    Sleep = 12 => SleepArgs { duration_ns: u64 }
    /// (period_ns) → 0. Periodic notification from `Endpoint::CLOCK` to the calling thread;
    /// setting it again replaces the period; 0 cancels.
    AlarmSet = 13 => AlarmSetArgs { period_ns: u64 }
    /// (addr, expected) → 0. Blocks while the u32 at `addr` (4-byte aligned, else
    /// InvalidArgument) equals `expected`; returns 0 at once if it differs. Lock-word
    /// format (see `mutex_word`): the owner's slot + 1 in the low 16 bits (0 = unlocked),
    /// `WAITERS` when contended — so the kernel knows whom the caller waits for.
    MutexWait = 14 => MutexWaitArgs { word: UserPtr<u32>, expected: u64 }
    /// (addr) → number woken (0 or 1). Wakes the longest waiter on `addr`.
    MutexWake = 15 => MutexWakeArgs { word: UserPtr<u32> }
    /// (grantee, addr, len, access) → grant id. Lets `grantee`'s process (any of its
    /// threads) copy from/to this memory with the safe-copy kernel calls.
    GrantCreate = 16 => GrantCreateArgs { grantee: Endpoint, memory: UserSlice<u8>, access: GrantAccess }
    /// (grant id) → 0.
    GrantRevoke = 17 => GrantRevokeArgs { grant: u64 }
    /// () → the caller's endpoint.
    SelfEndpoint = 18 => SelfEndpointArgs {}
    /// () → nanoseconds since boot.
    ClockNs = 19 => ClockNsArgs {}
    /// (name_ptr, name_len) → endpoint of the main thread of the boot process with that name
    /// (names are at most 32 bytes; NotFound otherwise, and for a process PM has created
    /// and not started yet).
    Lookup = 20 => LookupArgs { name: UserSlice<u8> }
    /// (kernel call number, args…) → depends on the call. Privileged: each process has a
    /// mask of the kernel calls it may make; others fail with PermissionDenied.
    KernelCall = 21 => KernelCallTrapArgs { call: u64, arguments: KernelCallRegisters }
    /// (text) → never returns. The runtime's panic handler: the kernel reports the panic
    /// with `text` (its first 512 bytes, an invalid UTF-8 tail cut) and a backtrace of the
    /// caller, as a crash (error log, `Crash` frame of kind `UserPanic` on the monitor), and
    /// ends the process with status 101. A `text` that cannot be read is reported as such.
    Panic = 22 => PanicArgs { text: UserSlice<u8> }
    /// (dest, src or ANY, msg_ptr) → 0. A server's reply and its next receive in one call
    /// (seL4's ReplyRecv): delivers the message at msg_ptr to `dest` only if `dest` is
    /// waiting for the caller right now (its `SendReceive`), else fails with `NotReady` and
    /// receives nothing; then receives from `src` into the same buffer, as `Receive`.
    ReplyReceive = 23 => ReplyReceiveArgs { destination: Endpoint, source: Endpoint, message: UserPtr<Message> }
    /// (frame) → never returns to the caller's code: ends a signal handler by restoring
    /// the registers the kernel saved in the signal frame at `frame` (`signal::frame`).
    /// The frame is hostile input: a wrong magic, a RIP or RSP outside user space or an
    /// MXCSR with reserved bits is `InvalidArgument` (nothing restored).
    SignalReturn = 24 => SignalReturnArgs { frame: UserPtr<[u64; crate::signal::frame::WORDS]> }
    /// (signal) → 0 after the handler has run, or NotReady. The caller's process signals
    /// itself without asking its signal manager, for a signal the manager has said it may
    /// (`KernelCall::PmSignalDirect`: caught and not masked): the process's other threads'
    /// interruptible waits end with `Interrupted` and the caller returns to user mode in
    /// the handler, with a signal frame whose saved RAX is this call's 0. Any other signal
    /// is `NotReady` and nothing changes: ask the manager (PM's `SIGNAL`), which decides.
    /// A number outside 1..=63 is `InvalidArgument`.
    SignalRaise = 25 => SignalRaiseArgs { signal: crate::signal::Signal }
    /// (pid, mode, out) → `ptrace::direct::STOPPED` with the stop record in `out`,
    /// `direct::ASK_MANAGER` or `direct::NOT_AT_STOP`. Only the tracer PM registered for
    /// `pid` (`PmSetTracer`; else `PermissionDenied`, `NotFound` for no such process):
    /// resumes the tracee's thread held at a trace stop with `mode`'s flags
    /// (`ResumeMode::WaitOnly`: the tracee must be running), then blocks until its next
    /// trace stop, which the kernel hands over instead of telling PM. NOT_AT_STOP at once,
    /// nothing done, if the tracee is not where `mode` expects it (PM-stopped, held for
    /// something else); ASK_MANAGER later if it ends or the caller is signalled: then PM's
    /// WAIT has the answer. `Exists` if another thread already waits for it.
    TraceResumeWait = 26 => TraceResumeWaitArgs { process: Pid, mode: crate::ptrace::ResumeMode, out: UserPtr<[u64; crate::ptrace::direct::RECORD_WORDS]> }
    /// (dest, 0, message in RDX/R10/R8/R9) → 0, with the reply in RDI (its sender), RDX,
    /// R10, R8, R9 (`RegisterMessage`). `SendReceive` with a register message: the same
    /// semantics and errors, no buffer in memory. The IPC fast path's call (a server
    /// waiting for the caller takes it without a memory copy, and the CPU goes straight to
    /// it); every other case runs the state machine's general way.
    SendReceiveRegisters = 27 => SendReceiveRegistersArgs { destination: Endpoint, reserved: Reserved, message: RegisterMessage }
    /// (dest, src or ANY, message in RDX/R10/R8/R9) → 0, with the message received in RDI
    /// (its sender), RDX, R10, R8, R9. `ReplyReceive` with register messages both ways.
    ReplyReceiveRegisters = 28 => ReplyReceiveRegistersArgs { destination: Endpoint, source: Endpoint, message: RegisterMessage }
}

calls! {
    /// Kernel call numbers (RDI of `Syscall::KernelCall`; its arguments follow in RSI, RDX,
    /// R10, R8, R9). Bit `n` of a process's kernel-call mask allows call `n`. An unknown
    /// number fails with NoSuchCall before the mask is consulted, and the mask is consulted
    /// before the arguments are decoded.
    pub enum KernelCall;
    /// A kernel call with its arguments decoded.
    pub enum KernelCallArgs;
    registers: KERNEL_CALL_REGISTERS;

    /// (granter, grant, offset, local_addr, len) → 0. Copies from a grant into the caller.
    SafeCopyFrom = 0 => SafeCopyFromArgs { granter: Endpoint, grant: u64, offset: u64, local: UserSlice<u8> }
    /// (granter, grant, offset, local_addr, len) → 0. Copies from the caller into a grant.
    SafeCopyTo = 1 => SafeCopyToArgs { granter: Endpoint, grant: u64, offset: u64, local: UserSlice<u8> }
    /// (status: 0 success, else failure) → never returns. Stops the machine (QEMU exit);
    /// used by test and benchmark programs to end a run.
    Shutdown = 2 => ShutdownArgs { status: u64 }
    /// (buffer, len) → bytes written. Fills the buffer with a consistent snapshot: a
    /// `SnapshotHeader`, then one `ThreadRecord` per live thread and one `ProcessRecord`
    /// per process (crates/abi `introspect`). A buffer too small for the whole snapshot
    /// gets nothing but the required size: the call fails with `InvalidArgument` after
    /// writing just the header, whose counts say how big it must be.
    Snapshot = 3 => SnapshotArgs { buffer: UserSlice<u8> }
    /// (mask) → the previous mask. Sets which trace event kinds are recorded (bit
    /// `EventKind as u16`); unknown bits are ignored.
    TraceMask = 4 => TraceMaskArgs { mask: u64 }
    /// (pid, start, pages, flags) → 0. VM: maps fresh zeroed frames at every page of the
    /// range in process `pid` (charged to it). `Exists` if any page is already mapped
    /// (nothing changes), `OutOfResources` if the frames are not there (nothing changes).
    VmMap = 5 => VmMapArgs { process: Pid, range: PageRange, flags: MapFlags }
    /// (pid, start, pages) → pages unmapped. VM: unmaps the range's mapped pages and
    /// returns their frames to the allocator.
    VmUnmap = 6 => VmUnmapArgs { process: Pid, range: PageRange }
    /// (pid, start, pages, flags) → pages changed. VM: sets the access of the range's
    /// mapped pages.
    VmProtect = 7 => VmProtectArgs { process: Pid, range: PageRange, flags: MapFlags }
    /// (pid, start, pages) → pages mapped in the range.
    VmQuery = 8 => VmQueryArgs { process: Pid, range: PageRange }
    /// (thread) → 0. VM: the fault of `thread` (waiting for VM) is handled; the faulting
    /// instruction runs again. `InvalidArgument` if the thread is not waiting for VM.
    VmResume = 9 => VmResumeArgs { thread: Endpoint }
    /// (thread) → 0. VM: the fault of `thread` is invalid; it becomes an exception for its
    /// process (reported; then the process is killed, or the thread is held for its
    /// signal manager if it has one).
    VmFail = 10 => VmFailArgs { thread: Endpoint }
    /// (thread) → pid. VM: the process a thread belongs to (VM learns who sent a request).
    VmProcessOf = 11 => VmProcessOfArgs { thread: Endpoint }
    /// (source pid | target pid << 32, source start, target start, pages, flags) → 0. VM:
    /// maps the frames mapped at the source range of one process at the target range of
    /// another (or the same) process, so both see the same memory; each frame gets one
    /// more holder and is freed only when the last mapping of it goes (unmap or exit).
    /// Checked before anything changes: `NotFound` for an unknown pid; `Fault` if a source
    /// page is not mapped; `PermissionDenied` if `flags` asks for writable and a source
    /// page is read-only; `Exists` if any target page is mapped; `OutOfResources` if the
    /// target's page tables need frames that are not there or a frame has the most holders.
    /// Counted as resident and as shared in the target (`Process::shared_pages`).
    VmMapShared = 12 => VmMapSharedArgs { processes: ProcessPair, ranges: SharedRanges, flags: MapFlags }
    /// (pid) → pages. VM: the memory limit the boot table set for process `pid` (`mem=`),
    /// 0 if it set none.
    VmLimitOf = 13 => VmLimitOfArgs { process: Pid }
    /// (pid, bytes) → 0. VM: the virtual size of process `pid` is now `bytes` (the regions
    /// VM placed: heap, stack regions, mappings); the kernel adds the image it loaded and
    /// reports the sum in the snapshot (`ProcessRecord::virtual_bytes`). VM calls it when
    /// the size changes, never per fault.
    VmSetVirtual = 16 => VmSetVirtualArgs { process: Pid, bytes: u64 }
    /// (index, buffer) → the string's length. PM: copies the string of boot module
    /// `index` (its name and options) into the buffer, as much as fits. `NotFound` past
    /// the last module.
    PmModuleName = 24 => PmModuleNameArgs { index: u64, buffer: UserSlice<u8> }
    /// (index, offset, buffer) → bytes copied (0 at the end; at most `pm::MAX_COPY_BYTES`),
    /// or for an empty buffer the file's size. PM: reads boot module `index`'s file from
    /// `offset`; the kernel never hands out a writable view of it.
    PmModuleRead = 25 => PmModuleReadArgs { index: u64, offset: u64, buffer: UserSlice<u8> }
    /// (name, priority, kernel-call mask, memory-limit pages) → pid. PM: an empty process
    /// (an address space, no threads) whose signal manager and reaper is the caller.
    /// `InvalidArgument` for an empty or too long name, `OutOfResources` without a slot.
    PmCreate = 26 => PmCreateArgs { name: UserSlice<u8>, priority: Priority, kernel_calls: u64, memory_limit_pages: u64 }
    /// (pid, start, pages, flags) → 0. PM: fresh zeroed image pages in a process it
    /// created and has not started, inside the user image range. `Exists` if any page is
    /// mapped, `InvalidArgument` outside the image range, `PermissionDenied` for a process
    /// that is not the caller's or has started.
    PmMapImage = 27 => PmMapImageArgs { process: Pid, range: PageRange, flags: ImageFlags }
    /// (pid, address, data) → 0. PM: copies `data` (at most `pm::MAX_COPY_BYTES`) from the
    /// caller into mapped image pages of a process it created and has not started
    /// (`Fault` if a page is not mapped).
    PmCopyTo = 28 => PmCopyToArgs { process: Pid, address: u64, data: UserSlice<u8> }
    /// (pid, entry, arguments) → the main thread's endpoint. PM: starts the main thread
    /// of a process it created, at `entry`, with the argument string (at most
    /// `pm::MAX_ARGUMENT_BYTES`) as a boot program gets it. `Exists` if it has started.
    /// `ipc` limits whom it may send to (`pm::IpcAllow`: all, or the live processes of a
    /// pid list; `NotFound` for a pid that is not live, `InvalidArgument` for a bad list).
    PmStart = 29 => PmStartArgs { process: Pid, entry: u64, arguments: UserSlice<u8>, ipc: IpcAllow }
    /// (pid, status) → 0. PM: ends process `pid` in whatever state it is (its waits,
    /// timers and grants go with it) with exit status `status`. `PermissionDenied` for
    /// the caller itself and the VM server.
    PmKill = 30 => PmKillArgs { process: Pid, status: u64 }
    /// (out) → 1 if an exit was collected, else 0. PM: takes one exited process it
    /// created and writes `[pid, status]` to `out`; its slot is free from then on.
    PmReap = 31 => PmReapArgs { out: UserPtr<[u64; 2]> }
    /// (out) → 1 if an event was collected, else 0. Signal manager: takes one event about
    /// a process it manages (`signal::ProcessEvent`: a thread held after an exception).
    PmNextEvent = 32 => PmNextEventArgs { out: UserPtr<crate::signal::ProcessEvent> }
    /// (thread) → 0. Signal manager: a thread it holds (`HeldForManager`) runs again from
    /// where it faulted. `InvalidArgument` if it is not held, `PermissionDenied` if the
    /// caller is not its process's manager.
    PmResumeThread = 33 => PmResumeThreadArgs { thread: Endpoint }
    /// (pid, manager pid) → 0. PM: process `manager` handles `pid`'s exceptions and signals
    /// from now on. `NotFound` for an unknown pid, `InvalidArgument` for a process as its
    /// own manager, `PermissionDenied` for the VM server.
    PmSetSignalManager = 34 => PmSetSignalManagerArgs { process: Pid, manager: Pid }
    /// (pid, signal, handler) → threads interrupted. Signal manager: the target's threads
    /// blocked in send, receive, sendrec, a mutex wait or a sleep return `Interrupted`
    /// (a wait on the caller is spared); with a non-zero `handler` one thread enters it at
    /// its next return to user mode with a signal frame. The manager decides; the kernel
    /// delivers.
    PmSignal = 35 => PmSignalArgs { process: Pid, signal: crate::signal::Signal, handler: u64 }
    /// (pid) → 0. Signal manager: none of `pid`'s threads runs until `PmResume` (MINIX's
    /// runctl stop); a wait that completes meanwhile leaves its thread ready but parked.
    /// Idempotent.
    PmStop = 36 => PmStopArgs { process: Pid }
    /// (pid) → 0. Signal manager: `pid`'s threads may run again. Idempotent.
    PmResume = 37 => PmResumeArgs { process: Pid }
    /// (thread, out) → 0. PM (tracing): the user registers of a thread of a process the
    /// caller manages, as it last entered the kernel, in `ptrace::Registers::to_words`
    /// order. `PermissionDenied` for a thread of a process the caller does not manage.
    PmGetRegisters = 38 => PmGetRegistersArgs { thread: Endpoint, out: UserPtr<[u64; crate::ptrace::REGISTER_WORDS]> }
    /// (thread, registers) → 0. PM (tracing): replaces those registers; the thread resumes
    /// with them. `InvalidArgument` for a `rip` outside user memory or an `rflags` that
    /// changes more than `ptrace::WRITABLE_FLAGS` (`Registers::check_write`).
    PmSetRegisters = 39 => PmSetRegistersArgs { thread: Endpoint, registers: UserPtr<[u64; crate::ptrace::REGISTER_WORDS]> }
    /// (pid, address, buffer) → 0. PM (tracing): copies `buffer.len()` bytes (at most
    /// `pm::MAX_COPY_BYTES`) of a managed process's memory at `address` into the buffer.
    /// `Fault` if a page there is not mapped (VM is not asked to map it).
    PmPeek = 40 => PmPeekArgs { process: Pid, address: u64, buffer: UserSlice<u8> }
    /// (pid, address, data) → 0. PM (tracing): writes `data` (at most `pm::MAX_COPY_BYTES`)
    /// into a managed process's mapped memory, read-only and executable pages included (a
    /// breakpoint in code); `PermissionDenied` if a page there is shared with another
    /// mapping (the write would change it too), `Fault` if one is not mapped.
    PmPoke = 41 => PmPokeArgs { process: Pid, address: u64, data: UserSlice<u8> }
    /// (thread, flags) → the previous flags. PM (tracing): `ptrace::TraceFlags` of a thread
    /// of a managed process: SYSCALLS holds it (`HeldForManager`, an event for the manager)
    /// at every system call's entry and exit, STEP after its next user instruction. Unknown
    /// bits are `InvalidArgument`. While any thread is traced, IPC takes the slow path.
    PmTraceFlags = 42 => PmTraceFlagsArgs { thread: Endpoint, flags: crate::ptrace::TraceFlags }
    /// (request, outcome, data) → 0. PM: its answer to host command `request` (a
    /// `host_command::KIND_HOST_COMMAND` message): an outcome PM may give and, for `List`
    /// with `Ok`, whole process-tree records (at most `host_command::MAX_TREE_RECORDS`),
    /// else UTF-8 text (at most `host_command::MAX_TEXT_BYTES`). The kernel sends it to the
    /// host as the result frame. `NotFound` if no such request waits for PM (answered
    /// already, timed out, or never sent); `InvalidArgument` for bad data.
    PmHostReply = 43 => PmHostReplyArgs { request: RequestId, outcome: Outcome, data: UserSlice<u8> }
    /// (pid, set, handler) → 0. Signal manager: the signals of `set` (a
    /// `signal::CatchableSet`) are the ones process `pid` may raise itself with
    /// `SignalRaise`, delivered into `handler` (a user address; `InvalidArgument` otherwise
    /// when `set` is not empty) — the manager's mirror of what the process catches and has
    /// not masked, replaced whole by each call and kept exact by the manager. Emptied when
    /// the process's manager changes. `PermissionDenied` if the caller is not the
    /// process's manager.
    PmSignalDirect = 44 => PmSignalDirectArgs { process: Pid, set: crate::signal::CatchableSet, handler: u64 }
    /// (process, tracer) → 0. Signal manager (PM): `tracer` (a live process other than
    /// `process`; 0 clears) may use `TraceResumeWait` on `process`. A thread of the
    /// previous tracer waiting there is woken with `ptrace::direct::ASK_MANAGER`.
    PmSetTracer = 45 => PmSetTracerArgs { process: Pid, tracer: Pid }
    /// (thread) → 0. RS: `thread`, the main thread of a process the caller manages (its
    /// signal manager), keeps its endpoint when it dies: it becomes a restart tombstone
    /// (`ThreadState::Restarting`) instead of dead. Its clients waiting for a reply then
    /// get `Restarted`; senders queued on it, and new ones, wait for the replacement
    /// (`ServiceTakeOver`) or `ServiceRelease`. Idempotent. `PermissionDenied` if the caller
    /// does not manage it, `InvalidArgument` if it is not a main thread, `DeadEndpoint` /
    /// `BadEndpoint` for an endpoint that names no live thread. Numbers 50..=53 stay clear
    /// of other branches' kernel calls.
    ServiceKeepEndpoint = 50 => ServiceKeepEndpointArgs { thread: Endpoint }
    /// (tombstone, replacement) → 0. RS: the replacement's main thread takes over the
    /// tombstone's slot and endpoint (MINIX's `sys_update` slot swap, one-sided): the
    /// threads queued on the tombstone become its queue, its own endpoint ceases to exist
    /// (`DeadEndpoint` from then on), it keeps the tombstone's keep-endpoint mark, and
    /// `Lookup` of its process answers the kept endpoint. `Busy` unless both are in a safe
    /// state: the tombstone `Restarting`, the replacement blocked in `Receive` from ANY with
    /// nothing in progress (no queued senders, no pending notifications or async messages
    /// for it, no async table of its own, not traced, not stopped) — nothing changes then.
    /// `InvalidArgument` if `tombstone` is not a tombstone (a live thread, or the same
    /// endpoint twice) or `replacement` is not a main thread; `PermissionDenied` if the
    /// caller does not manage the replacement's process.
    ServiceTakeOver = 51 => ServiceTakeOverArgs { tombstone: Endpoint, replacement: Endpoint }
    /// (tombstone) → 0. RS gives a service up (held down, or taken down): the tombstone's
    /// queued senders fail with `DeadEndpoint` and its slot is freed; the endpoint is dead.
    /// `InvalidArgument` if it is not a tombstone.
    ServiceRelease = 52 => ServiceReleaseArgs { tombstone: Endpoint }
    /// (a, b) → 0. RS (live update): the main threads of two processes the caller manages
    /// exchange their slots and endpoints, so the new version serves the old version's
    /// endpoint (keep-endpoint mark included) and the old version the new one's — the same
    /// call again swaps back (rollback). `Busy` unless both are blocked in `Receive` from
    /// ANY with nothing in progress (as `ServiceTakeOver`'s replacement); nothing changes
    /// then. `InvalidArgument` for the same endpoint twice or a thread that is not a main
    /// thread, `PermissionDenied` for one the caller does not manage.
    ServiceSwap = 53 => ServiceSwapArgs { a: Endpoint, b: Endpoint }
    /// (thread, out) → frames written. Signal manager (RS): the backtrace of `thread`, held
    /// after a CPU exception (`HeldForManager`), written to `out` (`signal::Backtrace`):
    /// its RIP, then the return addresses of its user frame-pointer chain, at most
    /// `signal::BACKTRACE_FRAMES`. The chain is read through the held process's own page
    /// tables and ends at the first frame that is not mapped user memory, not ascending,
    /// or a zero return address, so a wild RBP only shortens it. `PermissionDenied` if the
    /// caller does not manage its process, `InvalidArgument` if it is not held at an
    /// exception (a trace stop included), `Fault` for a bad `out`.
    ServiceBacktrace = 54 => ServiceBacktraceArgs { thread: Endpoint, out: UserPtr<crate::signal::Backtrace> }
    /// (out) → 1 if a crash was written, else 0. RS: takes the oldest crash of a system
    /// server (VM, PM, DS: the boot table's, which have no signal manager) that the kernel
    /// reported to RS before ending it (`signal::SystemCrash`: the event, the main thread,
    /// the backtrace); RS gets a `KIND_PROCESS_EVENT` notice when one is queued. At most
    /// `SYSTEM_CRASHES_KEPT` wait; later ones are dropped with a console line.
    /// `PermissionDenied` for any caller but RS, `Fault` for a bad `out` (nothing taken).
    ServiceSystemCrash = 55 => ServiceSystemCrashArgs { out: UserPtr<crate::signal::SystemCrash> }
}

impl KernelCall {
    /// The mask bit allowing this call.
    pub const fn mask_bit(self) -> u64 {
        1 << (self as u64)
    }
}

/// The user-space mutex lock word shared with the kernel's wait path.
pub mod mutex_word {
    /// Low bits: owner thread slot + 1; 0 means unlocked.
    pub const OWNER_MASK: u32 = 0xffff;
    /// Set while some thread waits (the owner must call MutexWake when unlocking).
    pub const WAITERS: u32 = 1 << 31;

    /// The lock word for `slot` owning the lock with no waiters.
    pub const fn locked_by(slot: u16) -> u32 {
        slot as u32 + 1
    }

    /// The owner slot recorded in `word`, if locked.
    pub const fn owner(word: u32) -> Option<u16> {
        match word & OWNER_MASK {
            0 => None,
            owner_plus_one => Some((owner_plus_one - 1) as u16),
        }
    }
}

/// Access rights of a memory grant (`GrantCreate`'s `access`).
pub mod grant_access {
    /// The grantee may copy from the granted memory.
    pub const READ: u64 = 1;
    /// The grantee may copy into the granted memory.
    pub const WRITE: u64 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_numbers_round_trip() {
        // System-call numbers may have gaps too (a number kept for a call on another
        // branch): every listed call round-trips, every other number is no call.
        for n in 0..64 {
            let listed = Syscall::ALL.iter().any(|&c| c as u64 == n);
            assert_eq!(
                Syscall::from_number(n).map(|c| c as u64),
                listed.then_some(n)
            );
        }
        assert_eq!(Syscall::from_number(26), Some(Syscall::TraceResumeWait));
        // Kernel-call numbers may have gaps: every listed call round-trips, every other
        // number below 64 is no call.
        for n in 0..64 {
            let listed = KernelCall::ALL.iter().any(|&c| c as u64 == n);
            assert_eq!(
                KernelCall::from_number(n).map(|c| c as u64),
                listed.then_some(n)
            );
        }
        assert_eq!(KernelCall::ALL.len() as u64, KernelCall::COUNT);
        assert!(KernelCall::ALL.iter().all(|&c| (c as u64) < 64));
        assert_eq!(KernelCall::from_number(16), Some(KernelCall::VmSetVirtual));
        assert_eq!(Syscall::SendReceive.name(), "SendReceive");
        assert_eq!(KernelCall::Snapshot.name(), "Snapshot");
    }

    #[test]
    fn register_messages_take_rdx_r10_r8_r9_and_a_reserved_register_must_be_zero() {
        let message = RegisterMessage {
            kind: 9,
            tag: 2,
            payload: [10, 11, 12],
        };
        let call = SendReceiveRegistersArgs {
            destination: Endpoint::new(3, 7),
            reserved: Reserved,
            message,
        };
        let registers = call.encode();
        assert_eq!(
            registers,
            [Endpoint::new(3, 7).0, 0, 2 << 32 | 9, 10, 11, 12]
        );
        assert_eq!(SendReceiveRegistersArgs::decode(&registers), Ok(call));
        let mut nonzero = registers;
        nonzero[1] = 1;
        assert_eq!(
            SendReceiveRegistersArgs::decode(&nonzero),
            Err(Error::InvalidArgument)
        );
        let reply = ReplyReceiveRegistersArgs {
            destination: Endpoint::new(3, 7),
            source: Endpoint::ANY,
            message,
        };
        let registers = reply.encode();
        assert_eq!(registers[1], Endpoint::ANY.0);
        assert_eq!(registers[2..], [2 << 32 | 9, 10, 11, 12]);
        assert_eq!(ReplyReceiveRegistersArgs::decode(&registers), Ok(reply));
    }

    #[test]
    fn arguments_round_trip_through_registers() {
        let send = SendReceiveArgs {
            destination: Endpoint::new(3, 7),
            message: UserPtr::new(0x40_1000).unwrap(),
        };
        let registers = send.encode();
        assert_eq!(registers, [Endpoint::new(3, 7).0, 0x40_1000, 0, 0, 0, 0]);
        assert_eq!(SendReceiveArgs::decode(&registers), Ok(send));
        let copy = SafeCopyToArgs {
            granter: Endpoint::new(1, 1),
            grant: 0x10001,
            offset: 8,
            local: UserSlice::new(0x50_0000, 100).unwrap(),
        };
        let registers = copy.encode();
        assert_eq!(
            registers,
            [Endpoint::new(1, 1).0, 0x10001, 8, 0x50_0000, 100]
        );
        assert_eq!(
            KernelCallArgs::decode(KernelCall::SafeCopyTo, &registers),
            Ok(KernelCallArgs::SafeCopyTo(copy))
        );
    }

    #[test]
    fn bad_registers_are_refused_when_decoded() {
        assert_eq!(
            SendArgs::decode(&[1, 0x40_1004, 0, 0, 0, 0]),
            Err(Error::InvalidArgument),
            "a misaligned message"
        );
        assert_eq!(
            ReceiveArgs::decode(&[1, 0xffff_8000_0000_0000, 0, 0, 0, 0]),
            Err(Error::Fault),
            "a kernel address"
        );
        assert_eq!(
            DebugWriteArgs::decode(&[u64::MAX - 8, 16, 0, 0, 0, 0]),
            Err(Error::Fault),
            "a wrapping range"
        );
        assert_eq!(
            GrantCreateArgs::decode(&[1, 0x1000, 16, 4, 0, 0]),
            Err(Error::InvalidArgument),
            "unknown access bits"
        );
        assert_eq!(
            GrantCreateArgs::decode(&[1, 0x1000, 16, 0, 0, 0]),
            Err(Error::InvalidArgument),
            "no access bits"
        );
        assert_eq!(
            MutexWaitArgs::decode(&[0x1001, 0, 0, 0, 0, 0]),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn a_shared_map_is_two_processes_two_ranges_and_flags() {
        let source = 0x3000_0000_0000;
        let target = 0x3000_0010_0000;
        let args = VmMapSharedArgs {
            processes: ProcessPair {
                source: Pid(2),
                target: Pid(9),
            },
            ranges: SharedRanges::new(source, target, 4).unwrap(),
            flags: MapFlags::WRITABLE,
        };
        let registers = args.encode();
        assert_eq!(registers, [2 | 9 << 32, source, target, 4, 1]);
        assert_eq!(
            KernelCallArgs::decode(KernelCall::VmMapShared, &registers),
            Ok(KernelCallArgs::VmMapShared(args))
        );
        assert_eq!(args.ranges.source().start(), source);
        assert_eq!(args.ranges.target().end(), target + 4 * 4096);
        // Each range is checked like any PageRange; the flags like any MapFlags.
        let bad = |registers: [u64; 5]| VmMapSharedArgs::decode(&registers);
        assert_eq!(
            bad([0, source + 1, target, 4, 1]),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            bad([0, source, target + 8, 4, 1]),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            bad([0, source, 0xffff_8000_0000_0000, 4, 1]),
            Err(Error::Fault)
        );
        assert_eq!(bad([0, source, !0xfff, 4, 1]), Err(Error::Fault));
        assert_eq!(bad([0, source, target, 0, 1]), Err(Error::InvalidArgument));
        assert_eq!(
            bad([0, source, target, 513, 1]),
            Err(Error::InvalidArgument)
        );
        assert_eq!(bad([0, source, target, 4, 2]), Err(Error::InvalidArgument));
        assert_eq!(
            VmLimitOfArgs::decode(&[1 << 32, 0, 0, 0, 0]),
            Err(Error::InvalidArgument)
        );
    }
}
