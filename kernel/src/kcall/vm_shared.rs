//! VmMapShared: VM maps frames that one process maps into another as well, so both see the
//! same memory; each frame is freed only when its last mapping goes.
//!
//! Mechanism only, and safe whatever VM asks: the kernel counts the holders of every frame
//! (`memory::share_frame`, `kcore::frame_share`), so an unmap or an exit releases one
//! holder and a frame is freed only by its last. Everything is checked before anything
//! changes; the work is bounded by `MAX_PAGES_PER_CALL`.

use crate::memory;
use crate::syscall::Next;
use crate::system::Kernel;
use crate::thread::frames_to_map;
use vigil_abi::syscall::VmMapSharedArgs;
use vigil_abi::vm::Pid;
use vigil_abi::Error;
use vigil_kcore::slot::{ProcessSlot, ThreadSlot};

/// The live process with `pid` (`NotFound` otherwise).
fn process(kernel: &Kernel, pid: Pid) -> Result<ProcessSlot, Error> {
    kernel.processes.by_pid(pid.0).ok_or(Error::NotFound)
}

/// VmMapShared: the frames at `ranges.source()` of the source process, mapped at
/// `ranges.target()` of the target process with `flags`.
pub fn map_shared(
    kernel: &mut Kernel,
    _caller: ThreadSlot,
    args: VmMapSharedArgs,
) -> Result<Next, Error> {
    let source = process(kernel, args.processes.source)?;
    let target = process(kernel, args.processes.target)?;
    let (from, to) = (args.ranges.source(), args.ranges.target());
    let pages = args.ranges.pages();
    let writable = args.flags.writable();
    // Every source page is a mapped user page, writable if a writable view is asked for,
    // and its frame can take as many more holders as this call could give it (a source
    // range may map one frame at several pages).
    for i in 0..pages {
        let (frame, page_writable) = kernel.processes[source]
            .user_page(from.page(i))
            .ok_or(Error::Fault)?;
        if writable && !page_writable {
            return Err(Error::PermissionDenied);
        }
        if !memory::can_share(frame, pages as u32) {
            return Err(Error::OutOfResources);
        }
    }
    if kernel.processes[target].any_mapped(to) {
        return Err(Error::Exists);
    }
    // The views need no frames of their own, only page tables for the target range.
    if (memory::free_frames() as u64) < frames_to_map(pages) - pages {
        return Err(Error::OutOfResources);
    }
    // Everything is checked: from here on nothing fails. (Source and target may be one
    // process: the ranges do not overlap, since every source page is mapped and no target
    // page is, so each source page still maps what was checked.)
    for i in 0..pages {
        let (frame, _) = kernel.processes[source]
            .user_page(from.page(i))
            .expect("the source page was checked");
        memory::share_frame(frame);
        kernel.processes[target].map_shared_page(to.page(i), frame, args.flags);
    }
    Ok(Next::Return(0))
}
