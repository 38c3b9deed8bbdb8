//! What VM tells the kernel for its snapshot: a process's virtual size (`VmSetVirtual`),
//! which only VM knows. Reported when it changes — a new process or thread, a request that
//! maps or unmaps — never per fault, and only if it differs from the last figure sent.

use alloc::collections::BTreeMap;
use vigil_rt::abi::vm::Pid;
use vigil_rt::{println, syscall};
use vigil_vmcore::Vm;

/// The virtual sizes last reported, by pid.
#[derive(Default)]
pub struct VirtualReports(BTreeMap<u32, u64>);

impl VirtualReports {
    /// Tells the kernel `pid`'s virtual size if it changed since the last report.
    pub fn update(&mut self, vm: &Vm, pid: u32) {
        let Some(bytes) = vm.process(pid).map(|p| p.stats().virtual_bytes) else {
            return;
        };
        if self.0.get(&pid) == Some(&bytes) {
            return;
        }
        match syscall::vm_set_virtual(Pid(pid), bytes) {
            Ok(_) => {
                self.0.insert(pid, bytes);
            }
            // The process may have exited meanwhile; its exit notice clears the entry.
            Err(error) => println!("could not report pid {pid}'s virtual size: {error}"),
        }
    }

    /// `pid` exited.
    pub fn forget(&mut self, pid: u32) {
        self.0.remove(&pid);
    }
}
