//! Memory grants: a process lets another copy from or into a range of its memory.
//!
//! The grant lives in the granting process's kernel record; its id is (slot + 1) plus the
//! slot's generation, so a revoked or reused grant id is refused. The grantee is named by
//! pid, so a process that reuses the grantee's slot gets nothing.

use crate::arch::paging::AddressSpace;
use crate::system::{Grant, Kernel, MAX_GRANTS};
use crate::usercopy::{self, Access};
use vigil_abi::syscall::grant_access;
use vigil_abi::{Endpoint, Error};

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
    /// Address in the caller.
    pub local: u64,
    pub len: u64,
    pub direction: CopyDirection,
}

fn grant_id(index: usize, generation: u16) -> u64 {
    (index as u64 + 1) | (u64::from(generation) << 16)
}

fn grant_index(id: u64) -> Option<(usize, u16)> {
    let index = (id & 0xffff).checked_sub(1)? as usize;
    (index < MAX_GRANTS && id >> 32 == 0).then_some((index, (id >> 16) as u16))
}

impl Kernel {
    /// GrantCreate(grantee, address, len, access).
    pub fn grant_create(
        &mut self,
        caller: u16,
        grantee: Endpoint,
        address: u64,
        len: u64,
        access: u64,
    ) -> Result<u64, Error> {
        if access == 0 || access & !(grant_access::READ | grant_access::WRITE) != 0 || len == 0 {
            return Err(Error::InvalidArgument);
        }
        let grantee_slot = self.table.resolve(grantee)?;
        let grantee_process = self.threads[usize::from(grantee_slot)].process;
        let grantee_pid = self.processes[usize::from(grantee_process)].pid;
        let needed = if access & grant_access::WRITE != 0 {
            Access::Write
        } else {
            Access::Read
        };
        let length = usize::try_from(len).map_err(|_| Error::InvalidArgument)?;
        let process = usize::from(self.threads[usize::from(caller)].process);
        usercopy::check(
            &AddressSpace::from_root(self.processes[process].root),
            address,
            length,
            needed,
        )?;
        let grants = &mut self.processes[process].grants;
        let index = grants
            .iter()
            .position(|g| !g.in_use)
            .ok_or(Error::OutOfResources)?;
        let generation = grants[index].generation.wrapping_add(1);
        grants[index] = Grant {
            in_use: true,
            generation,
            grantee_pid,
            address,
            len,
            access,
        };
        Ok(grant_id(index, generation))
    }

    /// GrantRevoke(id).
    pub fn grant_revoke(&mut self, caller: u16, id: u64) -> Result<u64, Error> {
        let process = usize::from(self.threads[usize::from(caller)].process);
        let (index, generation) = grant_index(id).ok_or(Error::BadGrant)?;
        let grant = &mut self.processes[process].grants[index];
        if !grant.in_use || grant.generation != generation {
            return Err(Error::BadGrant);
        }
        grant.in_use = false;
        Ok(0)
    }

    /// Copies between `caller`'s memory and a grant of the process owning `request.granter`
    /// (SafeCopyFrom / SafeCopyTo).
    pub fn safe_copy(&mut self, caller: u16, request: SafeCopyRequest) -> Result<u64, Error> {
        let SafeCopyRequest {
            granter,
            grant: id,
            offset,
            local,
            len,
            direction,
        } = request;
        let into_caller = direction == CopyDirection::FromGrant;
        let granter_slot = self.table.resolve(granter)?;
        let granter_process = usize::from(self.threads[usize::from(granter_slot)].process);
        let caller_process = usize::from(self.threads[usize::from(caller)].process);
        let (index, generation) = grant_index(id).ok_or(Error::BadGrant)?;
        let grant = self.processes[granter_process].grants[index];
        let needed = if into_caller {
            grant_access::READ
        } else {
            grant_access::WRITE
        };
        let end = offset.checked_add(len).ok_or(Error::BadGrant)?;
        if !grant.in_use
            || grant.generation != generation
            || grant.grantee_pid != self.processes[caller_process].pid
            || grant.access & needed == 0
            || end > grant.len
        {
            return Err(Error::BadGrant);
        }
        let length = usize::try_from(len).map_err(|_| Error::InvalidArgument)?;
        let granter_space = AddressSpace::from_root(self.processes[granter_process].root);
        let caller_space = AddressSpace::from_root(self.processes[caller_process].root);
        let remote = grant.address + offset;
        if into_caller {
            usercopy::copy_between(&granter_space, remote, &caller_space, local, length)?;
        } else {
            usercopy::copy_between(&caller_space, local, &granter_space, remote, length)?;
        }
        Ok(0)
    }
}
