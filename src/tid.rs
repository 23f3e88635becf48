//! Transaction ids and object ids: 8 bytes, compared big-endian, as ZODB stores them.
//!
//! A transaction id is a ZODB `TimeStamp`: minutes since 1900-01-01 in the high four bytes,
//! seconds scaled by 2³²/60 in the low four.

use std::fmt;

/// A transaction id (ZODB `TimeStamp` bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Tid(pub [u8; 8]);

/// An object id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Oid(pub [u8; 8]);

macro_rules! id_common {
    ($t:ident) => {
        impl $t {
            /// All zeros: "no transaction yet" / the root object.
            pub const ZERO: $t = $t([0; 8]);

            pub fn from_u64(n: u64) -> $t {
                $t(n.to_be_bytes())
            }

            pub fn as_u64(self) -> u64 {
                u64::from_be_bytes(self.0)
            }

            pub fn as_bytes(&self) -> &[u8; 8] {
                &self.0
            }

            /// From a byte string that must be exactly 8 long.
            pub fn from_slice(bytes: &[u8]) -> Option<$t> {
                <[u8; 8]>::try_from(bytes).ok().map($t)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(0x{:016x})", stringify!($t), self.as_u64())
            }
        }
    };
}

id_common!(Tid);
id_common!(Oid);
