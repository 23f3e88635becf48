//! The iteration order of a Python 2.7 dict, which decides the order cPickle writes its items.
//!
//! A Python 2 primary sends an extension as its own process iterates it: the dict `cPickle.
//! loads` rebuilt from the stored pickle, key by key. The process that pickled it for the
//! file iterated a dict rebuilt the same way (ZEO's server, a copy) or built key by key by
//! the application (`setExtendedInfo`). Which slot a key lands in depends on the keys
//! inserted before it when hashes collide, so the received order is not always the order
//! Python 2 writes: the secondary rebuilds the dict as Python 2 would from the received
//! order — `dictobject.c`'s open addressing (`i = 5*i + perturb + 1`, `perturb >>= 5`),
//! its growth (×4 of the used count once two thirds full), the unrandomized hashes of
//! `str`, `unicode`, `int`, `long`, `float`, `bool` and tuples of them on a 64-bit build —
//! and takes the slots' order. Nothing here is a crate's: no Rust crate models CPython 2's
//! dict internals.
//!
//! Keys whose hash Python 2 takes from the object's address (`None`, instances) or that
//! Python would merge (`1`, `1L`, `1.0` and `True`; `'a'` and `u'a'`) leave the order as
//! received.

use super::num;
use super::Value;

const MIN_SIZE: usize = 8;
const PERTURB_SHIFT: u32 = 5;

/// Dicts up to this many keys have every order tried (6! = 720 rebuilds).
const EXHAUSTIVE_KEYS: usize = 6;
/// Rebuilds allowed for the exhaustive search over one extension.
pub const REBUILD_BUDGET: usize = 100_000;

/// The order of the items of the dict that a Python 2 process pickled, given the order it
/// sent them in after rebuilding the dict from that pickle: indices into `received`. `None`
/// when the received order is kept (unhashable keys, or nothing better found).
///
/// The sender's dict was built by inserting the pickled order `F` and iterated as
/// `received = order(insert(F))`; `F` is wanted. Without collisions it is `received`
/// itself. Small dicts have every order tried, and an `F` found that way is taken when it
/// is the only one; where several orders rebuild into `received`, as for larger dicts,
/// the first of `order(insert(received))` and `received` that does is taken.
///
/// `budget` bounds the rebuilds tried over a whole extension (a hostile primary could send
/// thousands of small dicts); once spent, small dicts are treated as larger ones.
pub fn pickled_order(received: &[&Value], budget: &mut usize) -> Option<Vec<usize>> {
    let hashes: Vec<i64> = received.iter().map(|k| hash(k)).collect::<Option<_>>()?;
    if has_equal_keys(received, &hashes) {
        return None;
    }
    let identity = |o: &[usize]| o.iter().enumerate().all(|(i, &j)| i == j);
    // A permutation rebuilds into `received` when the order of inserting its keys is
    // `received` again.
    let rebuilds = |perm: &[usize]| {
        let h: Vec<i64> = perm.iter().map(|&i| hashes[i]).collect();
        let o = order_of(&h);
        o.iter().enumerate().all(|(pos, &k)| perm[k] == pos)
    };
    let n = received.len();
    let tries = (1..=n.min(EXHAUSTIVE_KEYS)).product::<usize>();
    if n <= EXHAUSTIVE_KEYS && *budget >= tries {
        *budget -= tries;
        // The pickled order is itself the order of a dict built by inserting keys: of the
        // orders that rebuild into `received`, only those are candidates.
        let mut dict_orders = std::collections::BTreeSet::new();
        for_each_permutation(n, |perm| {
            let h: Vec<i64> = perm.iter().map(|&i| hashes[i]).collect();
            dict_orders.insert(order_of(&h).iter().map(|&k| perm[k]).collect::<Vec<_>>());
        });
        let mut found: Vec<&Vec<usize>> = dict_orders.iter().filter(|o| rebuilds(o)).collect();
        if found.len() == 1 {
            return Some(found.remove(0).clone()).filter(|f| !identity(f));
        }
    }
    // Correct a candidate by the permutation that separates what it rebuilds into from
    // `received`, a few times: the keys out of place are the few colliding ones.
    let mut candidate: Vec<usize> = order_of(&hashes);
    for _ in 0..ITERATIONS {
        let h: Vec<i64> = candidate.iter().map(|&i| hashes[i]).collect();
        // `rebuilt[pos]` = the index into `candidate` of the key iterated at `pos`.
        let rebuilt = order_of(&h);
        if rebuilt
            .iter()
            .enumerate()
            .all(|(pos, &k)| candidate[k] == pos)
        {
            return (!identity(&candidate)).then_some(candidate);
        }
        // Key `candidate[rebuilt[pos]]` came out at `pos` but `received` has key `pos`
        // there: give key `pos` the insertion rank that produced `pos`.
        let mut next = vec![0usize; n];
        for (pos, &k) in rebuilt.iter().enumerate() {
            next[k] = pos;
        }
        candidate = next;
    }
    None
}

/// Corrections tried on an order before the received order is kept.
const ITERATIONS: usize = 8;

/// Every permutation of `0..n` (Heap's algorithm), without allocating per permutation.
fn for_each_permutation(n: usize, mut f: impl FnMut(&[usize])) {
    let mut perm: Vec<usize> = (0..n).collect();
    let mut c = vec![0usize; n];
    f(&perm);
    let mut i = 0;
    while i < n {
        if c[i] < i {
            if i % 2 == 0 {
                perm.swap(0, i);
            } else {
                perm.swap(c[i], i);
            }
            f(&perm);
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
}

/// The order Python 2.7 iterates a dict built by inserting `keys` one by one: indices into
/// `keys`. `None` when some key's hash or identity is not reproducible.
#[cfg(test)]
fn iteration_order(keys: &[&Value]) -> Option<Vec<usize>> {
    let hashes: Vec<i64> = keys.iter().map(|k| hash(k)).collect::<Option<_>>()?;
    if has_equal_keys(keys, &hashes) {
        return None;
    }
    Some(order_of(&hashes))
}

/// Keys Python would merge (equal hashes and equal values): refuse rather than guess.
fn has_equal_keys(keys: &[&Value], hashes: &[i64]) -> bool {
    let mut sorted: Vec<(i64, usize)> = hashes.iter().copied().zip(0..).collect();
    sorted.sort_unstable();
    sorted
        .windows(2)
        .any(|w| w[0].0 == w[1].0 && same_key(keys[w[0].1], keys[w[1].1]))
}

/// The slots' order after inserting keys of these hashes one by one (`PyDict_SetItem`,
/// growing as `dictresize` does).
fn order_of(hashes: &[i64]) -> Vec<usize> {
    let mut table: Vec<Option<usize>> = vec![None; MIN_SIZE];
    for (i, &h) in hashes.iter().enumerate() {
        insert(&mut table, i, h);
        let used = i + 1;
        // No deletions, so fill == used.
        if used * 3 >= table.len() * 2 {
            let minused = if used > 50_000 { 2 } else { 4 } * used;
            let mut size = MIN_SIZE;
            while size <= minused {
                size <<= 1;
            }
            let old = std::mem::replace(&mut table, vec![None; size]);
            for j in old.into_iter().flatten() {
                insert(&mut table, j, hashes[j]);
            }
        }
    }
    table.into_iter().flatten().collect()
}

fn insert(table: &mut [Option<usize>], entry: usize, hash: i64) {
    let mask = table.len() - 1;
    let mut i = (hash as u64 as usize) & mask;
    let mut perturb = hash as u64;
    while table[i & mask].is_some() {
        i = (i << 2)
            .wrapping_add(i)
            .wrapping_add(perturb as usize)
            .wrapping_add(1);
        perturb >>= PERTURB_SHIFT;
    }
    table[i & mask] = Some(entry);
}

/// Whether two keys with equal hashes are equal in Python 2 (the same dict key).
fn same_key(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        // 'a' == u'a' for ASCII; anything else between them counts as equal, to be safe.
        (Value::Bytes(_), Value::Str(_)) | (Value::Str(_), Value::Bytes(_)) => true,
        (Value::Tuple(x), Value::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_key(a, b))
        }
        // Numbers of equal hash may be equal across types: to be safe, equal.
        _ => true,
    }
}

fn fix(x: i64) -> i64 {
    if x == -1 {
        -2
    } else {
        x
    }
}

/// Python 2.7's `hash()` on a 64-bit build, without hash randomization (its default).
fn hash(v: &Value) -> Option<i64> {
    Some(match v {
        Value::Bytes(b) => string_hash(b.iter().map(|&c| c as u64), b.len()),
        Value::Str(s) => string_hash(s.chars().map(|c| c as u64), s.chars().count()),
        Value::Int(i) => fix(*i),
        Value::Bool(b) => *b as i64,
        Value::BigInt(b) => long_hash(b),
        Value::Float(f) => float_hash(*f),
        Value::Tuple(items) => {
            let mut x: i64 = 0x345678;
            let mut mult: i64 = 1000003;
            let mut len = items.len() as i64;
            for item in items {
                len -= 1;
                let y = hash(item)?;
                x = (x ^ y).wrapping_mul(mult);
                mult = mult.wrapping_add(82520 + len + len);
            }
            fix(x.wrapping_add(97531))
        }
        _ => return None,
    })
}

/// `string_hash` and `unicode_hash` (the same loop over bytes or code points).
fn string_hash(units: impl Iterator<Item = u64>, len: usize) -> i64 {
    if len == 0 {
        return 0;
    }
    let mut units = units.peekable();
    let first = *units.peek().expect("not empty");
    let mut x = (first << 7) as i64;
    for c in units {
        x = 1000003i64.wrapping_mul(x) ^ c as i64;
    }
    fix(x ^ len as i64)
}

/// `long_hash`: the magnitude folded modulo 2**64 - 1 over 30-bit digits, then the sign.
fn long_hash(twos: &[u8]) -> i64 {
    let decimal = num::twos_to_decimal(twos);
    let (neg, digits) = match decimal.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, decimal.as_str()),
    };
    // The magnitude in base 2**30, most significant digit first.
    let mut base30: Vec<u32> = Vec::new();
    for c in digits.bytes() {
        let mut carry = (c - b'0') as u64;
        for d in base30.iter_mut().rev() {
            let v = *d as u64 * 10 + carry;
            *d = (v & 0x3fff_ffff) as u32;
            carry = v >> 30;
        }
        while carry > 0 {
            base30.insert(0, (carry & 0x3fff_ffff) as u32);
            carry >>= 30;
        }
    }
    let mut x: u64 = 0;
    for &d in &base30 {
        x = x.rotate_left(30);
        let (s, overflow) = x.overflowing_add(d as u64);
        x = s + overflow as u64;
    }
    let x = if neg { x.wrapping_neg() } else { x };
    fix(x as i64)
}

/// `_Py_HashDouble`.
fn float_hash(v: f64) -> i64 {
    if v.is_finite() && v.fract() == 0.0 {
        let half = (i64::MAX / 2) as f64;
        if v > half || -v > half {
            return long_hash(&float_to_twos(v));
        }
        return fix(v as i64);
    }
    if v.is_infinite() {
        return if v < 0.0 { -271828 } else { 314159 };
    }
    let (mut m, expo) = frexp(v);
    m *= 2147483648.0;
    let hipart = m as i64;
    let m = (m - hipart as f64) * 2147483648.0;
    fix(hipart
        .wrapping_add(m as i64)
        .wrapping_add((expo as i64) << 15))
}

/// C's `frexp`: `v = m * 2**e` with `0.5 <= |m| < 1` (finite, non-zero `v`; NaN as C).
fn frexp(v: f64) -> (f64, i32) {
    if v == 0.0 || v.is_nan() {
        return (v, 0);
    }
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: scale into the normal range first.
        let (m, e) = frexp(v * 2f64.powi(64));
        return (m, e - 64);
    }
    let m = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (m, exp - 1022)
}

/// An integral float beyond i64/2 as two's-complement bytes (for `long_hash`).
fn float_to_twos(v: f64) -> Vec<u8> {
    let (m, e) = frexp(v.abs());
    // v = m * 2**e, m in [0.5, 1): the 53-bit mantissa shifted left by e - 53.
    let mant = (m * 2f64.powi(53)) as u128;
    let shift = e - 53;
    let mut bytes = Vec::new();
    if (0..75).contains(&shift) {
        let mag = mant << shift;
        bytes.extend_from_slice(&mag.to_le_bytes());
        bytes.push(0);
    } else {
        // Beyond 2**128: build the magnitude byte by byte.
        let zeros = (shift / 8) as usize;
        bytes.resize(zeros, 0);
        let rest = mant << (shift % 8);
        bytes.extend_from_slice(&rest.to_le_bytes());
        bytes.push(0);
    }
    let mut b = num::minimize_twos(bytes);
    if v < 0.0 {
        // Two's complement negation.
        for x in b.iter_mut() {
            *x = !*x;
        }
        let mut carry = true;
        for x in b.iter_mut() {
            let (s, c) = x.overflowing_add(carry as u8);
            *x = s;
            carry = c;
            if !carry {
                break;
            }
        }
        b = num::minimize_twos(b);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(text: &str) -> Value {
        match num::decimal_to_value(text) {
            Some(Ok(Value::Int(i))) => Value::BigInt(num::i64_to_twos(i)),
            Some(Ok(v)) => v,
            _ => panic!("{text}"),
        }
    }

    #[test]
    fn hashes_as_python2() {
        // Printed by Python 2.7.18 (64-bit, no -R): `hash(v)`.
        let b = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        let u = |s: &str| Value::Str(s.into());
        let three_200 = "265613988875874769338781322035779626829233452653394495974574961739\
                         092490901302182994384699044001";
        let cases = [
            (b("note"), -4166584487116698704),
            (u("note"), -4166584487116698704),
            (b(""), 0),
            (u("\u{e9}t\u{e9}"), -4116773383342158585),
            (u("\u{1f600}x"), -1997109378905513350),
            (Value::Int(-1), -2),
            (Value::Int(1 << 40), 1099511627776),
            (int("5"), 5),
            (int("-5"), -5),
            (int("18446744073709551616"), 1),
            (int("-18446744073709551616"), -2),
            (int("1267650600228229401496703205376"), 68719476736),
            (int(three_200), -4662376482864500920),
            (int(&format!("-{three_200}")), 4662376482864500920),
            (Value::Float(1.5), 1610645504),
            (Value::Float(-2.5e-300), -3682106574),
            (Value::Float(1e300), 8474648701417850880),
            (Value::Float(2f64.powi(62)), 4611686018427387904),
            (Value::Float(-(2f64.powi(70))), -64),
            (Value::Float(1e18), 1000000000000000000),
            (Value::Float(f64::INFINITY), 314159),
            (Value::Float(0.1), 2576882278),
            (Value::Bool(true), 1),
            (
                Value::Tuple(vec![
                    b("a"),
                    Value::Int(1),
                    Value::Tuple(vec![int("2"), u("b")]),
                ]),
                3723650952070186630,
            ),
            (Value::Tuple(vec![]), 3527539),
        ];
        for (v, want) in cases {
            assert_eq!(hash(&v), Some(want), "{v:?}");
        }
        assert_eq!(hash(&Value::None), None);
    }

    #[test]
    fn refuses_keys_python_would_merge() {
        let one = Value::Int(1);
        let t = Value::Bool(true);
        assert_eq!(iteration_order(&[&one, &t]), None);
        let a = Value::Bytes(b"ab".to_vec());
        let c = Value::Bytes(b"cd".to_vec());
        assert_eq!(iteration_order(&[&a, &c]).map(|o| o.len()), Some(2));
    }
}
