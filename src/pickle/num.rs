//! Number conversions both directions need: integers as pickle's little-endian
//! two's-complement bytes (LONG1/LONG4) and as decimal text (INT/LONG), and Python's `repr`
//! of a float (protocol 0's FLOAT).

use super::Value;

/// The most decimal digits an integer literal may have. CPython 3.11 refuses longer ones
/// (`sys.get_int_max_str_digits()`), and it keeps our quadratic conversion cheap.
pub const MAX_INT_DIGITS: usize = 4300;

/// Drop redundant sign-extension bytes; zero becomes empty (as CPython's LONG1 writes it).
pub fn minimize_twos(mut b: Vec<u8>) -> Vec<u8> {
    while let Some(&last) = b.last() {
        let n = b.len();
        let redundant = if n == 1 {
            last == 0
        } else {
            let prev_neg = b[n - 2] & 0x80 != 0;
            (last == 0 && !prev_neg) || (last == 0xff && prev_neg)
        };
        if !redundant {
            break;
        }
        b.pop();
    }
    b
}

/// The minimal two's-complement little-endian bytes of `i` (CPython's LONG1 payload).
pub fn i64_to_twos(i: i64) -> Vec<u8> {
    minimize_twos(i.to_le_bytes().to_vec())
}

/// The value of little-endian two's-complement bytes: [`Value::Int`] when it fits in i64,
/// else a normalized [`Value::BigInt`].
pub fn twos_to_value(bytes: &[u8]) -> Value {
    let b = minimize_twos(bytes.to_vec());
    if b.len() <= 8 {
        let neg = b.last().is_some_and(|&x| x & 0x80 != 0);
        let mut buf = [if neg { 0xff } else { 0 }; 8];
        buf[..b.len()].copy_from_slice(&b);
        Value::Int(i64::from_le_bytes(buf))
    } else {
        Value::BigInt(b)
    }
}

fn negate_in_place(b: &mut [u8]) {
    let mut carry = true;
    for x in b.iter_mut() {
        let (v, c) = (!*x).overflowing_add(carry as u8);
        *x = v;
        carry = c;
    }
}

/// Parse `[+-]digits` (decimal only, at most [`MAX_INT_DIGITS`] digits). `None` when the
/// text is no such literal; `Err(())` when it has too many digits.
pub fn decimal_to_value(text: &str) -> Option<Result<Value, ()>> {
    let (neg, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if digits.len() > MAX_INT_DIGITS {
        return Some(Err(()));
    }
    if digits.len() <= 18 {
        let m: i64 = digits.parse().ok()?;
        return Some(Ok(Value::Int(if neg { -m } else { m })));
    }
    // Magnitude in base-2^32 limbs, little-endian, built 9 digits at a time.
    let mut limbs: Vec<u32> = Vec::new();
    let bytes = digits.as_bytes();
    let first = bytes.len() % 9;
    let mut chunks: Vec<&[u8]> = Vec::new();
    if first > 0 {
        chunks.push(&bytes[..first]);
    }
    chunks.extend(bytes[first..].chunks(9));
    for chunk in chunks {
        let mut carry: u64 = chunk.iter().fold(0u64, |a, &c| a * 10 + (c - b'0') as u64);
        let mul = 10u64.pow(chunk.len() as u32);
        for limb in limbs.iter_mut() {
            let v = *limb as u64 * mul + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let mut b: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    b.push(0); // room for the sign bit
    if neg {
        negate_in_place(&mut b);
    }
    Some(Ok(twos_to_value(&b)))
}

/// Decimal text of little-endian two's-complement bytes (as Python's `repr(int)`).
pub fn twos_to_decimal(bytes: &[u8]) -> String {
    let neg = bytes.last().is_some_and(|&x| x & 0x80 != 0);
    let mut mag = bytes.to_vec();
    if neg {
        mag.push(0xff);
        negate_in_place(&mut mag);
    }
    // Limbs, most significant first, for long division by 10^9.
    let mut limbs: Vec<u32> = mag
        .chunks(4)
        .map(|c| {
            let mut buf = [0u8; 4];
            buf[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(buf)
        })
        .rev()
        .collect();
    let mut parts: Vec<u32> = Vec::new();
    loop {
        while limbs.first() == Some(&0) {
            limbs.remove(0);
        }
        if limbs.is_empty() {
            break;
        }
        let mut rem: u64 = 0;
        for limb in limbs.iter_mut() {
            let v = (rem << 32) | *limb as u64;
            *limb = (v / 1_000_000_000) as u32;
            rem = v % 1_000_000_000;
        }
        parts.push(rem as u32);
    }
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    match parts.split_last() {
        None => s.push('0'),
        Some((top, rest)) => {
            s.push_str(&top.to_string());
            for p in rest.iter().rev() {
                s.push_str(&format!("{p:09}"));
            }
        }
    }
    s
}

/// Python's `repr(float)` (`float_repr_style == 'short'`), as protocol 0 writes floats.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, like Python's repr.
    let sci = format!("{:e}", x);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::from(sign);
    if !(-4..16).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twos_minimal_like_cpython() {
        assert_eq!(i64_to_twos(0), Vec::<u8>::new());
        assert_eq!(i64_to_twos(127), vec![0x7f]);
        assert_eq!(i64_to_twos(128), vec![0x80, 0]);
        assert_eq!(i64_to_twos(-128), vec![0x80]);
        assert_eq!(i64_to_twos(-129), vec![0x7f, 0xff]);
        assert_eq!(i64_to_twos(i64::MIN), vec![0, 0, 0, 0, 0, 0, 0, 0x80]);
    }

    #[test]
    fn decimal_round_trip() {
        for s in [
            "0",
            "-1",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "-9223372036854775809",
            "123456789012345678901234567890123456789",
            "-340282366920938463463374607431768211456",
        ] {
            let v = decimal_to_value(s).unwrap().unwrap();
            let back = match &v {
                Value::Int(i) => i.to_string(),
                Value::BigInt(b) => twos_to_decimal(b),
                _ => unreachable!(),
            };
            assert_eq!(back, s);
        }
        assert!(matches!(
            decimal_to_value("9223372036854775808"),
            Some(Ok(Value::BigInt(_)))
        ));
        assert!(decimal_to_value("12a").is_none());
        assert!(decimal_to_value(&"9".repeat(5000)).unwrap().is_err());
    }

    #[test]
    fn float_repr_like_python() {
        let cases = [
            (1.0, "1.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (123456789.123, "123456789.123"),
            (1e22, "1e+22"),
            (5e-324, "5e-324"),
            (1.5e300, "1.5e+300"),
            (-2.5, "-2.5"),
        ];
        for (x, s) in cases {
            assert_eq!(float_repr(x), s, "{x:?}");
        }
    }
}
