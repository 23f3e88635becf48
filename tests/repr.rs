//! `repr` against real Python: `tests/fixtures/repr/*.txt` hold thousands of inputs (biased
//! toward quotes, backslashes, control and high bytes, and non-printable code points) with
//! the reprs Python 2.7 and 3.11 printed for them (`tests/fixtures/repr/generate.py`).

use zrs::repr::{py2_bytes_repr, py3_bytes_repr, py_str_repr};

fn unhex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0, "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("{s:?}: {e}")))
        .collect()
}

#[test]
fn bytes_reprs_match_python_2_and_3() {
    let mut n = 0;
    for line in include_str!("fixtures/repr/bytes.txt").lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 3, "{line:?}");
        let input = unhex(f[0]);
        assert_eq!(py2_bytes_repr(&input), f[1], "Python 2 repr of {:?}", f[0]);
        assert_eq!(py3_bytes_repr(&input), f[2], "Python 3 repr of {:?}", f[0]);
        n += 1;
    }
    assert!(n > 5000, "only {n} cases");
}

#[test]
fn str_reprs_match_python_3() {
    let mut n = 0;
    for line in include_str!("fixtures/repr/str.txt").lines() {
        let (input, expected) = line.split_once('\t').expect("two fields");
        let input = String::from_utf8(unhex(input)).expect("UTF-8 input");
        let expected = String::from_utf8(unhex(expected)).expect("UTF-8 repr");
        assert_eq!(py_str_repr(&input), expected, "repr of {input:?}");
        n += 1;
    }
    assert!(n > 5000, "only {n} cases");
}
