//! User memory as the kernel sees it: `UserPtr` and `UserSlice`, checked allegations about
//! user addresses, and `Pod`, the sealed set of types that may be copied across the boundary.
//!
//! A raw address from user space becomes one of these types once, at the system-call
//! boundary. Construction is the only place the address is checked for alignment, overflow
//! and the user range; whether the pages behind it are mapped and writable is checked when
//! the kernel copies (usercopy), because that can change between calls. Only `Pod` types
//! can be read or written: types valid for every bit pattern and without padding bytes, so
//! that neither a `bool`, an enum nor an uninitialised byte can cross.

use crate::async_message::AsyncMessage;
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::introspect::{ProcessRecord, SnapshotHeader, ThreadRecord};
use crate::layout::{ThreadInfo, USER_END};
use crate::message::Message;
use crate::server_introspect::{MemoryRecord, SharedMapperRecord, SharedObjectRecord};
use core::marker::PhantomData;
use core::mem::{align_of, size_of};

mod sealed {
    /// Keeps `Pod` closed: only this crate can vouch for a type's layout.
    pub trait Sealed {}
}

/// Plain old data: every bit pattern is a valid value and there are no padding bytes, so a
/// value can be copied from or to user memory byte for byte. Sealed: implemented only here,
/// for integers, arrays of them and the ABI's `#[repr(C)]` records (each checked below to
/// have no padding).
pub trait Pod: sealed::Sealed + Copy + 'static {}

macro_rules! pod {
    ($($ty:ty),* $(,)?) => {
        $(impl sealed::Sealed for $ty {} impl Pod for $ty {})*
    };
}

pod!(u8, u16, u32, u64, i8, i16, i32, i64, Endpoint);
pod!(
    Message,
    AsyncMessage,
    SnapshotHeader,
    ThreadRecord,
    ProcessRecord,
    ThreadInfo,
    MemoryRecord,
    SharedObjectRecord,
    SharedMapperRecord
);

impl<T: Pod, const N: usize> sealed::Sealed for [T; N] {}
impl<T: Pod, const N: usize> Pod for [T; N] {}

/// Asserts at compile time that `$ty` is exactly as big as its listed field types: no padding.
macro_rules! no_padding {
    ($ty:ty: $($field:ty),+) => {
        const _: () = assert!(size_of::<$ty>() == 0 $(+ size_of::<$field>())+);
    };
}

no_padding!(Endpoint: u64);
no_padding!(ThreadInfo: u64, u64, [u64; 6]);
no_padding!(Message: Endpoint, u32, u32, [u64; crate::message::PAYLOAD_WORDS]);
no_padding!(AsyncMessage: u32, u32, Endpoint, Message);
no_padding!(SnapshotHeader: u32, u32, u64, u64, u64, u64, u32, u32, u32, u32, u64, u64);
no_padding!(ThreadRecord: Endpoint, u32, u8, u8, u16, Endpoint, u64, [u64; 9], [u64; 3]);
no_padding!(
    ProcessRecord: u32,
    u32,
    [u8; crate::introspect::RECORD_NAME_BYTES],
    Endpoint,
    u64,
    u8,
    [u8; 7],
    u32,
    u32,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64
);
no_padding!(MemoryRecord: u32, u32, u64, u64, u64, u64, u64, u64, u64, u64, u64, u64, [u64; 3]);
no_padding!(SharedObjectRecord: u32, u32, u32, u32, u64, u64, u8, u8, u8, [u8; 5], [u8; 32], u64);
no_padding!(SharedMapperRecord: u32, u32, u32, u8, [u8; 3], u64, u64, [u64; 6]);

/// The address of one `T` in user memory: aligned for `T` and wholly below `USER_END`.
#[derive(PartialEq, Eq)]
pub struct UserPtr<T> {
    address: u64,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for UserPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for UserPtr<T> {}

impl<T> core::fmt::Debug for UserPtr<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "UserPtr({:#x})", self.address)
    }
}

impl<T: Pod> UserPtr<T> {
    /// Address 0: aligned and in range, never mapped (what an empty record field holds).
    pub const NULL: UserPtr<T> = UserPtr {
        address: 0,
        _type: PhantomData,
    };

    /// Checks an alleged address: `InvalidArgument` if it is not aligned for `T`, `Fault`
    /// if `T` would wrap or reach past the user half.
    pub const fn new(address: u64) -> Result<UserPtr<T>, Error> {
        if !address.is_multiple_of(align_of::<T>() as u64) {
            return Err(Error::InvalidArgument);
        }
        match address.checked_add(size_of::<T>() as u64) {
            Some(end) if end <= USER_END => Ok(UserPtr {
                address,
                _type: PhantomData,
            }),
            _ => Err(Error::Fault),
        }
    }

    /// The address.
    pub const fn address(self) -> u64 {
        self.address
    }

    /// The bytes of the value, as a slice.
    pub const fn as_bytes(self) -> UserSlice<u8> {
        UserSlice {
            address: self.address,
            len: size_of::<T>(),
            _type: PhantomData,
        }
    }

    /// The leading part of the value as a `U` (for example the status words of an
    /// asynchronous-message entry). `U` must fit in `T` and need no stricter alignment:
    /// checked at compile time.
    pub const fn prefix<U: Pod>(self) -> UserPtr<U> {
        const {
            assert!(size_of::<U>() <= size_of::<T>());
            assert!(align_of::<U>() <= align_of::<T>());
        }
        UserPtr {
            address: self.address,
            _type: PhantomData,
        }
    }
}

/// `len` consecutive `T`s in user memory: aligned for `T`, the byte length does not
/// overflow, and the whole range lies below `USER_END`. An empty slice is valid anywhere in
/// the user half.
#[derive(PartialEq, Eq)]
pub struct UserSlice<T> {
    address: u64,
    len: usize,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for UserSlice<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for UserSlice<T> {}

impl<T> core::fmt::Debug for UserSlice<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "UserSlice({:#x}, {})", self.address, self.len)
    }
}

impl<T: Pod> UserSlice<T> {
    /// No elements, at address 0.
    pub const EMPTY: UserSlice<T> = UserSlice {
        address: 0,
        len: 0,
        _type: PhantomData,
    };

    /// Checks an alleged range of `len` elements at `address`: `InvalidArgument` if it is
    /// misaligned, `Fault` if its size overflows or it reaches past the user half.
    pub const fn new(address: u64, len: u64) -> Result<UserSlice<T>, Error> {
        if !address.is_multiple_of(align_of::<T>() as u64) {
            return Err(Error::InvalidArgument);
        }
        let Some(bytes) = len.checked_mul(size_of::<T>() as u64) else {
            return Err(Error::Fault);
        };
        match address.checked_add(bytes) {
            Some(end) if end <= USER_END && len <= usize::MAX as u64 => Ok(UserSlice {
                address,
                len: len as usize,
                _type: PhantomData,
            }),
            _ => Err(Error::Fault),
        }
    }

    /// The first element's address.
    pub const fn address(self) -> u64 {
        self.address
    }

    /// Number of elements.
    pub const fn len(self) -> usize {
        self.len
    }

    pub const fn is_empty(self) -> bool {
        self.len == 0
    }

    /// Size in bytes (cannot overflow: checked at construction).
    pub const fn byte_len(self) -> usize {
        self.len * size_of::<T>()
    }

    /// Element `index`, if in range.
    pub const fn get(self, index: usize) -> Option<UserPtr<T>> {
        if index >= self.len {
            return None;
        }
        Some(UserPtr {
            address: self.address + (index * size_of::<T>()) as u64,
            _type: PhantomData,
        })
    }

    /// Elements `[start, start + len)`, if in range.
    pub const fn sub(self, start: usize, len: usize) -> Option<UserSlice<T>> {
        match start.checked_add(len) {
            Some(end) if end <= self.len => Some(UserSlice {
                address: self.address + (start * size_of::<T>()) as u64,
                len,
                _type: PhantomData,
            }),
            _ => None,
        }
    }

    /// The first `len` elements, or all of them if there are fewer.
    pub const fn truncate(self, len: usize) -> UserSlice<T> {
        UserSlice {
            address: self.address,
            len: if len < self.len { len } else { self.len },
            _type: PhantomData,
        }
    }

    /// The same memory as bytes.
    pub const fn as_bytes(self) -> UserSlice<u8> {
        UserSlice {
            address: self.address,
            len: self.byte_len(),
            _type: PhantomData,
        }
    }
}

/// User space's side: its own references are user memory by construction, so user/rt
/// encodes them without the checks (the kernel checks every address it is given anyway).
/// Only with the `user` feature, which the user runtime enables and the kernel does not,
/// so kernel code cannot turn a kernel reference into a user pointer.
#[cfg(feature = "user")]
impl<T: Pod> UserPtr<T> {
    /// The address of a value in the calling program's memory.
    #[inline(always)]
    pub fn from_ref(value: &T) -> UserPtr<T> {
        UserPtr {
            address: value as *const T as u64,
            _type: PhantomData,
        }
    }
}

#[cfg(feature = "user")]
impl<T: Pod> UserSlice<T> {
    /// The elements of a slice in the calling program's memory.
    #[inline(always)]
    pub fn from_slice(values: &[T]) -> UserSlice<T> {
        UserSlice {
            address: values.as_ptr() as u64,
            len: values.len(),
            _type: PhantomData,
        }
    }
}

impl UserSlice<u8> {
    /// The bytes as a `T`, if they are exactly one aligned `T`.
    pub const fn cast<T: Pod>(self) -> Option<UserPtr<T>> {
        if self.len != size_of::<T>() || !self.address.is_multiple_of(align_of::<T>() as u64) {
            return None;
        }
        Some(UserPtr {
            address: self.address,
            _type: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_are_checked_for_alignment_wrap_and_range() {
        assert!(UserPtr::<Message>::new(0x1000).is_ok());
        assert_eq!(UserPtr::<Message>::new(0x1004), Err(Error::InvalidArgument));
        assert_eq!(UserPtr::<u32>::new(0x1002), Err(Error::InvalidArgument));
        assert!(UserPtr::<u8>::new(0x1001).is_ok());
        assert_eq!(
            UserPtr::<Message>::new(USER_END - 32),
            Err(Error::Fault),
            "straddles the end of the user half"
        );
        assert!(UserPtr::<Message>::new(USER_END - 64).is_ok());
        assert_eq!(UserPtr::<u64>::new(u64::MAX - 7), Err(Error::Fault));
        assert_eq!(UserPtr::<u8>::new(0xffff_8000_0000_0000), Err(Error::Fault));
    }

    #[test]
    fn slices_are_checked_for_overflow_and_range() {
        assert!(UserSlice::<u8>::new(0x1000, 4096).is_ok());
        assert!(
            UserSlice::<u8>::new(USER_END, 0).is_ok(),
            "empty at the end"
        );
        assert_eq!(UserSlice::<u8>::new(USER_END, 1), Err(Error::Fault));
        assert_eq!(
            UserSlice::<u64>::new(0x1000, u64::MAX / 4),
            Err(Error::Fault)
        );
        assert_eq!(UserSlice::<u8>::new(u64::MAX, 2), Err(Error::Fault));
        assert_eq!(
            UserSlice::<u32>::new(0x1001, 1),
            Err(Error::InvalidArgument)
        );
        let slice = UserSlice::<AsyncMessage>::new(0x2000, 3).unwrap();
        assert_eq!(slice.byte_len(), 240);
        assert_eq!(slice.get(2).unwrap().address(), 0x2000 + 160);
        assert!(slice.get(3).is_none());
        assert_eq!(slice.sub(1, 2).unwrap().address(), 0x2000 + 80);
        assert!(slice.sub(2, 2).is_none());
        assert!(slice.sub(usize::MAX, 2).is_none());
        assert_eq!(slice.truncate(10).len(), 3);
    }

    #[test]
    fn prefix_and_cast_keep_the_address() {
        let entry = UserPtr::<AsyncMessage>::new(0x3000).unwrap();
        assert_eq!(entry.prefix::<[u32; 2]>().address(), 0x3000);
        let bytes = entry.as_bytes();
        assert_eq!(bytes.len(), 80);
        assert!(bytes.cast::<AsyncMessage>().is_some());
        assert!(bytes.cast::<Message>().is_none(), "wrong size");
    }
}
