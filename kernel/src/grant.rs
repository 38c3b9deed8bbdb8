//! Memory grants: a process lets another copy from or into a range of its memory.
//!
//! The grant lives in the granting process's kernel record; its id is (slot + 1) plus the
//! slot's 48-bit generation, so a revoked or reused grant id is refused — and never issued
//! again (a slot whose generation is spent is retired). The grantee is named by
//! pid, so a process that reuses the grantee's slot gets nothing.

use crate::process::MAX_GRANTS;
use crate::syscall::Next;
use crate::system::Kernel;
use crate::usercopy::{self, Access};
use vigil_abi::syscall::{GrantAccess, GrantCreateArgs, GrantRevokeArgs};
use vigil_abi::user_memory::UserSlice;
use vigil_abi::{Endpoint, Error};
use vigil_kcore::slot::ThreadSlot;

/// A memory grant: the process with pid `grantee_pid` may copy from/to `memory` of the
/// granting process, as `access` allows.
#[derive(Clone, Copy, Debug)]
pub struct Grant {
    in_use: bool,
    /// Bumped on every reuse of the slot, so revoked grant ids go stale. At
    /// `LAST_GENERATION` the slot is retired: an id is never issued twice.
    generation: u64,
    grantee_pid: u32,
    memory: UserSlice<u8>,
    access: GrantAccess,
}

impl Grant {
    pub const EMPTY: Grant = Grant {
        in_use: false,
        generation: 0,
        grantee_pid: 0,
        memory: UserSlice::EMPTY,
        access: GrantAccess::READ,
    };

    /// Whether the slot holds a live grant.
    pub const fn in_use(&self) -> bool {
        self.in_use
    }
}

/// Which way a safe copy goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyDirection {
    /// SafeCopyFrom: grant → caller.
    FromGrant,
    /// SafeCopyTo: caller → grant.
    ToGrant,
}

/// The arguments of SafeCopyFrom / SafeCopyTo.
#[derive(Clone, Copy, Debug)]
pub struct SafeCopyRequest {
    pub granter: Endpoint,
    pub grant: u64,
    /// Offset within the granted range.
    pub offset: u64,
    /// The caller's side of the copy.
    pub local: UserSlice<u8>,
    pub direction: CopyDirection,
}

/// The last generation a grant slot reaches (48 bits of the id); then it is retired.
const LAST_GENERATION: u64 = (1 << 48) - 1;

/// A grant id: the slot + 1 in the low 16 bits, the generation above.
fn grant_id(index: usize, generation: u64) -> u64 {
    (index as u64 + 1) | (generation << 16)
}

fn grant_index(id: u64) -> Option<(usize, u64)> {
    let index = (id & 0xffff).checked_sub(1)? as usize;
    (index < MAX_GRANTS).then_some((index, id >> 16))
}

/// GrantCreate: `grantee`'s process may copy from/to `memory` as `access` says.
pub fn create(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: GrantCreateArgs,
) -> Result<Next, Error> {
    let GrantCreateArgs {
        grantee,
        memory,
        access,
    } = args;
    if memory.is_empty() {
        return Err(Error::InvalidArgument);
    }
    let grantee_slot = kernel.table.resolve(grantee)?;
    let grantee_pid = kernel.process_of(grantee_slot).pid();
    let needed = if access.allows_write() {
        Access::Write
    } else {
        Access::Read
    };
    usercopy::check(kernel.space_of(caller), memory, needed)?;
    let process = kernel.threads[caller].process();
    let grants = kernel.processes[process].grants_mut();
    let index = grants
        .iter()
        .position(|g| !g.in_use && g.generation < LAST_GENERATION)
        .ok_or(Error::OutOfResources)?;
    let generation = grants[index].generation + 1;
    grants[index] = Grant {
        in_use: true,
        generation,
        grantee_pid,
        memory,
        access,
    };
    Ok(Next::Return(grant_id(index, generation)))
}

/// GrantRevoke: the grant id goes stale.
pub fn revoke(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: GrantRevokeArgs,
) -> Result<Next, Error> {
    let process = kernel.threads[caller].process();
    let (index, generation) = grant_index(args.grant).ok_or(Error::BadGrant)?;
    let grant = &mut kernel.processes[process].grants_mut()[index];
    if !grant.in_use || grant.generation != generation {
        return Err(Error::BadGrant);
    }
    grant.in_use = false;
    Ok(Next::Return(0))
}

impl Kernel {
    /// Copies between `caller`'s memory and a grant of the process owning `request.granter`
    /// (SafeCopyFrom / SafeCopyTo).
    pub fn safe_copy(&mut self, caller: ThreadSlot, request: SafeCopyRequest) -> Result<(), Error> {
        let SafeCopyRequest {
            granter,
            grant: id,
            offset,
            local,
            direction,
        } = request;
        let into_caller = direction == CopyDirection::FromGrant;
        let granter_slot = self.table.resolve(granter)?;
        let (index, generation) = grant_index(id).ok_or(Error::BadGrant)?;
        let grant = self.process_of(granter_slot).grants()[index];
        let allowed = if into_caller {
            grant.access.allows_read()
        } else {
            grant.access.allows_write()
        };
        let remote = usize::try_from(offset)
            .ok()
            .and_then(|offset| grant.memory.sub(offset, local.len()));
        let Some(remote) = remote.filter(|_| {
            grant.in_use
                && grant.generation == generation
                && grant.grantee_pid == self.process_of(caller).pid()
                && allowed
        }) else {
            return Err(Error::BadGrant);
        };
        let granter_space = self.space_of(granter_slot);
        let caller_space = self.space_of(caller);
        if into_caller {
            usercopy::copy_between(granter_space, remote, caller_space, local)
        } else {
            usercopy::copy_between(caller_space, local, granter_space, remote)
        }
    }
}
