//! Transaction ids and object ids: 8 bytes, compared big-endian, as ZODB stores them.
//!
//! A transaction id is a ZODB `TimeStamp`: minutes since 1900-01-01 in the high four bytes
//! (counting every month as 31 days), seconds scaled by 2³²/60 in the low four. [`Tid`]
//! converts to and from Unix time, prints, and steps forward (`laterThan`) exactly as ZODB's
//! `TimeStamp` does, so transcripts and new tids match a Python primary/secondary bit for bit
//! (checked against ZODB itself by `tests/tid_timestamp.rs`).

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

// ---------------------------------------------------------------------------
// ZODB `TimeStamp` semantics.
//
// These follow persistent's C implementation (`_timestamp.c`), which is what ZODB uses under
// CPython, including its integer wrap-around and truncation; the comments name where the pure
// Python fallback or CPython's `time` module would behave differently.

/// `60 / 2**32`: one unit of the low four bytes, in seconds. Exactly representable.
const SECOND_BIAS: f64 = 60.0 / 65536.0 / 65536.0;
const BASE_YEAR: u32 = 1900;
const MINUTES_PER_DAY: u32 = 1440;
/// The encoding pretends every month has 31 days.
const MINUTES_PER_MONTH: u32 = 31 * MINUTES_PER_DAY;
const MINUTES_PER_YEAR: u32 = 12 * MINUTES_PER_MONTH;

const MONTH_LEN: [[u32; 12]; 2] = [
    [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31],
    [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31],
];
const DAYS_BEFORE_MONTH: [[u32; 12]; 2] = [
    [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334],
    [0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335],
];

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Why a time cannot become a [`Tid`].
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum TimeStampError {
    #[error("time {secs} is not a finite number of seconds")]
    NotFinite { secs: f64 },
    /// ZODB raises `ValueError: year must be greater than 1900` here.
    #[error("time {secs} falls in year {year}, before 1900, the first year a tid can hold")]
    BeforeMinimum { secs: f64, year: i64 },
    /// Past 9917-10-14 04:15 UTC the minute count no longer fits four bytes (ZODB's C code
    /// silently wraps it around; we refuse).
    #[error("time {secs} is after 9917-10-14 04:15:59 UTC, the last minute a tid can hold")]
    AfterMaximum { secs: f64 },
    /// A calendar field out of range, as `TimeStamp(y, mo, d, h, mi, s)` would reject it.
    #[error("{field} must be between {min} and {max}: {value}")]
    FieldOutOfRange {
        field: &'static str,
        min: i64,
        max: i64,
        value: i64,
    },
    #[error("seconds must be in [0, 60]: {seconds}")]
    SecondsOutOfRange { seconds: f64 },
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31) in the proleptic Gregorian
/// calendar, which is what `time.gmtime` yields (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Python's float `%`: the result takes the sign of the divisor (CPython `float_rem`).
fn py_float_mod(x: f64, m: f64) -> f64 {
    let r = x % m;
    if r != 0.0 {
        if (m < 0.0) != (r < 0.0) {
            r + m
        } else {
            r
        }
    } else {
        0.0f64.copysign(m)
    }
}

/// The low four bytes for `sec` seconds, as C's `(unsigned int)(sec / bias)`.
///
/// For `sec == 60.0` (which `t % 60` yields for tiny negative `t`) the quotient is exactly
/// 2³²; x86-64 converts through a 64-bit integer and keeps the low 32 bits, giving 0, and
/// we do the same so `from_unix` matches ZODB there too.
fn seconds_to_low(sec: f64) -> u32 {
    (sec / SECOND_BIAS) as u64 as u32
}

/// `TimeStamp_FromDate` after validation: the minute count with C's unsigned wrap-around.
fn pack(year: u32, month: u32, day: u32, hour: u32, minute: u32, low: u32) -> Tid {
    let a = (year.wrapping_sub(BASE_YEAR))
        .wrapping_mul(12)
        .wrapping_add(month - 1)
        .wrapping_mul(31)
        .wrapping_add(day - 1)
        .wrapping_mul(24)
        .wrapping_add(hour)
        .wrapping_mul(60)
        .wrapping_add(minute);
    Tid::from_u64((u64::from(a) << 32) | u64::from(low))
}

/// Days from 1901-01-01 to January 1st of `year` (the C code's `TimeStamp_yad`, kept with its
/// own integer divisions so `to_unix` rounds exactly as ZODB's `timeTime()`).
fn days_since_1901(year: i64) -> f64 {
    let mut y = year - i64::from(BASE_YEAR);
    let d = ((y - 1) * 365) as f64;
    let s;
    if y > 0 {
        s = 1.0;
        y -= 1;
    } else {
        s = -1.0;
        y = -y;
    }
    d + s * ((y / 4 - y / 100 + (y + 300) / 400) as f64)
}

/// `TimeStamp_abst`: seconds since 1901-01-01 for a (year, 0-based month, 0-based day,
/// minute-of-day, second) tuple.
fn abs_seconds(year: i64, month0: usize, day0: i64, minute_of_day: i64, sec: i64) -> f64 {
    (days_since_1901(year)
        + f64::from(DAYS_BEFORE_MONTH[usize::from(is_leap(year))][month0])
        + day0 as f64)
        * 86400.0
        + (minute_of_day * 60) as f64
        + sec as f64
}

impl Tid {
    /// The largest tid: 9917-10-14 04:15:59.99999998 UTC.
    pub const MAX: Tid = Tid([0xff; 8]);

    /// The tid ZODB makes for Unix time `secs`:
    /// `TimeStamp(*(time.gmtime(secs)[:5] + (secs % 60,)))`.
    ///
    /// `gmtime` floors to whole seconds; the seconds field is `secs % 60` with Python's float
    /// modulo, scaled by 2³²/60 and truncated. Times outside what a tid can hold saturate:
    /// NaN and anything before 1900 give [`Tid::ZERO`], anything after 9917-10-14 04:15 UTC
    /// gives [`Tid::MAX`]; use [`Tid::try_from_unix`] to see those as errors.
    pub fn from_unix(secs: f64) -> Tid {
        match Tid::try_from_unix(secs) {
            Ok(tid) => tid,
            Err(TimeStampError::AfterMaximum { .. }) => Tid::MAX,
            Err(TimeStampError::NotFinite { secs }) if secs > 0.0 => Tid::MAX,
            Err(_) => Tid::ZERO,
        }
    }

    /// [`Tid::from_unix`], reporting times a tid cannot hold instead of saturating.
    pub fn try_from_unix(secs: f64) -> Result<Tid, TimeStampError> {
        if !secs.is_finite() {
            return Err(TimeStampError::NotFinite { secs });
        }
        // Well outside 1900..=9917 either way; keeps the integer math below in range.
        const FAR: f64 = 1.0e13;
        if secs < -FAR {
            return Err(TimeStampError::BeforeMinimum {
                secs,
                year: i64::MIN,
            });
        }
        if secs > FAR {
            return Err(TimeStampError::AfterMaximum { secs });
        }
        let whole = secs.floor() as i64;
        let (year, month, day) = civil_from_days(whole.div_euclid(86_400));
        let second_of_day = whole.rem_euclid(86_400);
        let hour = (second_of_day / 3600) as u32;
        let minute = (second_of_day % 3600 / 60) as u32;
        if year < i64::from(BASE_YEAR) {
            return Err(TimeStampError::BeforeMinimum { secs, year });
        }
        let minutes = ((((year - i64::from(BASE_YEAR)) * 12 + i64::from(month) - 1) * 31
            + i64::from(day)
            - 1)
            * 24
            + i64::from(hour))
            * 60
            + i64::from(minute);
        if minutes > i64::from(u32::MAX) {
            return Err(TimeStampError::AfterMaximum { secs });
        }
        let low = seconds_to_low(py_float_mod(secs, 60.0));
        Ok(pack(year as u32, month, day, hour, minute, low))
    }

    /// `TimeStamp(year, month, day, hour, minute, seconds)`, validated as ZODB validates it
    /// (year ≥ 1900, a real day of that month, hour < 24, minute < 60). Seconds must lie in
    /// `[0, 60]` (ZODB does not check them, and C leaves other values undefined); they are
    /// truncated to units of 60/2³² s. Years past 9917 wrap around as in ZODB.
    pub fn from_parts(
        year: u32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        seconds: f64,
    ) -> Result<Tid, TimeStampError> {
        fn check(
            field: &'static str,
            value: u32,
            min: u32,
            max: u32,
        ) -> Result<(), TimeStampError> {
            if value < min || value > max {
                return Err(TimeStampError::FieldOutOfRange {
                    field,
                    min: i64::from(min),
                    max: i64::from(max),
                    value: i64::from(value),
                });
            }
            Ok(())
        }
        check("year", year, BASE_YEAR, u32::MAX)?;
        check("month", month, 1, 12)?;
        let month_len = MONTH_LEN[usize::from(is_leap(i64::from(year)))][month as usize - 1];
        check("day", day, 1, month_len)?;
        check("hour", hour, 0, 23)?;
        check("minute", minute, 0, 59)?;
        if !(0.0..=60.0).contains(&seconds) {
            return Err(TimeStampError::SecondsOutOfRange { seconds });
        }
        Ok(pack(
            year,
            month,
            day,
            hour,
            minute,
            seconds_to_low(seconds),
        ))
    }

    /// (year, month, day, minute-of-day, low four bytes) as ZODB unpacks them. Garbage tids
    /// unpack to garbage dates (e.g. February 31st) exactly as ZODB's do.
    fn unpack(&self) -> (u32, u32, u32, u32, u32) {
        let a = u32::from_be_bytes([self.0[0], self.0[1], self.0[2], self.0[3]]);
        let b = u32::from_be_bytes([self.0[4], self.0[5], self.0[6], self.0[7]]);
        (
            a / MINUTES_PER_YEAR + BASE_YEAR,
            a % MINUTES_PER_YEAR / MINUTES_PER_MONTH + 1,
            a % MINUTES_PER_MONTH / MINUTES_PER_DAY + 1,
            a % MINUTES_PER_DAY,
            b,
        )
    }

    /// `(year, month, day, hour, minute, seconds)` as `TimeStamp.year()` … `.second()`.
    pub fn timestamp_parts(&self) -> (u32, u32, u32, u32, u32, f64) {
        let (year, month, day, minute_of_day, low) = self.unpack();
        (
            year,
            month,
            day,
            minute_of_day / 60,
            minute_of_day % 60,
            SECOND_BIAS * f64::from(low),
        )
    }

    /// Seconds since the Unix epoch, as `TimeStamp.timeTime()` computes them (same
    /// operations in the same order, so the same rounding).
    pub fn to_unix(&self) -> f64 {
        let (year, month, day, minute_of_day, low) = self.unpack();
        let year = i64::from(year);
        // `gmoff`: the C code measures from 1901-01-01 and subtracts the epoch's offset.
        let epoch = abs_seconds(1970, 0, 0, 0, 0);
        abs_seconds(
            year,
            month as usize - 1,
            i64::from(day) - 1,
            i64::from(minute_of_day),
            0,
        ) + SECOND_BIAS * f64::from(low)
            - epoch
    }

    /// `TimeStamp(self).laterThan(TimeStamp(prev))`: `self` if it is later than `prev`,
    /// else the smallest step after `prev`.
    ///
    /// The step adds one to the low four bytes; when they are all `0xff` they wrap to zero
    /// and the minute advances through the real calendar (next day, month, year), as ZODB's
    /// C code does. Two departures, both for tids no clock produces: where `prev` names a
    /// day its month does not have (ZODB raises `ValueError`) the minute still advances,
    /// rolling over to the next month; and after the last minute a tid can hold, the
    /// minute count wraps around to zero exactly as in ZODB.
    pub fn later_than(self, prev: Tid) -> Tid {
        if self > prev {
            return self;
        }
        let (a, b) = (prev.as_u64() >> 32, prev.as_u64() as u32);
        if b != u32::MAX {
            return Tid::from_u64((a << 32) | u64::from(b + 1));
        }
        let (mut year, mut month, mut day, mut minute_of_day, _) = prev.unpack();
        if minute_of_day >= MINUTES_PER_DAY - 1 {
            minute_of_day = 0;
            if day >= MONTH_LEN[usize::from(is_leap(i64::from(year)))][month as usize - 1] {
                day = 1;
                if month == 12 {
                    month = 1;
                    year += 1;
                } else {
                    month += 1;
                }
            } else {
                day += 1;
            }
        } else {
            minute_of_day += 1;
        }
        pack(year, month, day, minute_of_day / 60, minute_of_day % 60, 0)
    }
}

/// As `str(TimeStamp(tid))`: `2007-03-21 20:32:59.000000` (C's
/// `"%4.4d-%2.2d-%2.2d %2.2d:%2.2d:%09.6f"`).
///
/// The seconds are the exact binary value `60·b/2³²` rounded to microseconds half to even,
/// as glibc's `printf` rounds it, computed in integers (so `59.99999998…` prints as
/// `60.000000`, as in ZODB).
impl fmt::Display for Tid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day, minute_of_day, low) = self.unpack();
        let scaled = 60_000_000u64 * u64::from(low);
        let mut micros = scaled >> 32;
        let rest = scaled & 0xffff_ffff;
        const HALF: u64 = 1 << 31;
        if rest > HALF || (rest == HALF && micros % 2 == 1) {
            micros += 1;
        }
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
            year,
            month,
            day,
            minute_of_day / 60,
            minute_of_day % 60,
            micros / 1_000_000,
            micros % 1_000_000
        )
    }
}
