//! Running the `fuzz/` targets' checks on the stable toolchain, in ordinary tests.
//!
//! `cargo fuzz` needs nightly, which CI does not have. Each fuzz target is one call to a
//! public check function of the crate that owns the code (e.g. [`crate::wire::fuzz_decode`]);
//! a stable test calls the same function through [`run`] over the target's seed files
//! and a fixed number of inputs derived from them by [`mutations`], so CI checks the
//! targets' invariants and the two cannot drift apart.
//!
//! Invariants: the inputs depend only on the seeds and the number given (a fixed-seed
//! generator), so a failure reproduces; an input is at most [`MAX_INPUT`] bytes.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Longest input [`mutations`] makes.
pub const MAX_INPUT: usize = 16 << 10;

/// Bytes that matter to the decoders and parsers, inserted by [`mutations`].
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b" ",
    b"0",
    b"1",
    b"9",
    b"17 ",
    b"65536 ",
    b"18446744073709551615",
    b"99999999999999999999 ",
    b"<13>",
    b"<191>1 ",
    b"-",
    b":",
    b"=",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"",
    b"\\",
    b"\\u00e9",
    b"\\ud800",
    b"\x00",
    b"\xff",
    b"\xe2\x82",
    b"\xf0\x9f\x98\x80",
    b"2026-11-22T10:00:00.123456789+05:30",
    b"Nov 22 10:00:00",
    b"ERROR",
    b"\tat ",
];

/// The files of a seed folder as (name, bytes), sorted by name. A missing or empty folder
/// is an error: a target without seeds would be checked on random bytes alone.
pub fn read_seeds(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            seeds.push((name, std::fs::read(entry.path())?));
        }
    }
    if seeds.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no seed files in {}", dir.display()),
        ));
    }
    seeds.sort();
    Ok(seeds)
}

/// `count` inputs made from `seeds` with a generator seeded by `seed`: one in sixteen is
/// random bytes, the others a seed with one to eight edits (bytes set, bits flipped,
/// bytes or [`TOKENS`] inserted, ranges deleted, repeated or spliced in from another
/// seed, the end cut off).
pub fn mutations(seeds: &[Vec<u8>], count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..count)
        .map(|_| {
            if seeds.is_empty() || rng.u8(..16) == 0 {
                let len = rng.usize(..512);
                return std::iter::repeat_with(|| rng.u8(..)).take(len).collect();
            }
            let mut data = seeds[rng.usize(..seeds.len())].clone();
            for _ in 0..rng.usize(1..=8) {
                edit(&mut rng, &mut data, seeds);
            }
            data.truncate(MAX_INPUT);
            data
        })
        .collect()
}

/// One random edit of `data`.
fn edit(rng: &mut fastrand::Rng, data: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let at = |rng: &mut fastrand::Rng, data: &Vec<u8>| rng.usize(..=data.len());
    match rng.u8(..8) {
        0 if !data.is_empty() => {
            let i = rng.usize(..data.len());
            data[i] = rng.u8(..);
        }
        1 if !data.is_empty() => {
            let i = rng.usize(..data.len());
            data[i] ^= 1 << rng.u8(..8);
        }
        2 => {
            let i = at(rng, data);
            let n = rng.usize(1..=4);
            let bytes: Vec<u8> = std::iter::repeat_with(|| rng.u8(..)).take(n).collect();
            data.splice(i..i, bytes);
        }
        3 | 4 => {
            let i = at(rng, data);
            let token = TOKENS[rng.usize(..TOKENS.len())];
            data.splice(i..i, token.iter().copied());
        }
        5 if !data.is_empty() => {
            let i = rng.usize(..data.len());
            let n = rng.usize(1..=(data.len() - i).min(64));
            data.drain(i..i + n);
        }
        6 if !data.is_empty() => {
            let i = rng.usize(..data.len());
            let n = rng.usize(1..=(data.len() - i).min(256));
            let piece = data[i..i + n].to_vec();
            let to = at(rng, data);
            for _ in 0..rng.usize(1..=4) {
                data.splice(to..to, piece.iter().copied());
            }
        }
        7 if !data.is_empty() && !seeds.is_empty() => {
            let other = &seeds[rng.usize(..seeds.len())];
            if other.is_empty() {
                return;
            }
            let i = rng.usize(..other.len());
            let n = rng.usize(1..=other.len() - i);
            let to = at(rng, data);
            data.splice(to..to, other[i..i + n].iter().copied());
        }
        _ => {
            let keep = at(rng, data);
            data.truncate(keep);
        }
    }
}

/// Runs `check` over every seed file in `dir`, then over `count` [`mutations`] of them.
/// Returns how many inputs were checked. A failing check panics again naming the input
/// (the seed's file name or the mutation's number) and showing its bytes, escaped, so it
/// can be written to a file and given to the fuzz target.
pub fn run(dir: &Path, count: usize, check: impl Fn(&[u8])) -> usize {
    let seeds = match read_seeds(dir) {
        Ok(s) => s,
        Err(e) => panic!("fuzz seeds in {}: {e}", dir.display()),
    };
    let mut checked = 0;
    let run_one = |what: &str, input: &[u8]| {
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| check(input))) {
            let why = e
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            panic!(
                "fuzz check failed on {what} ({} bytes): {why}\ninput: b\"{}\"",
                input.len(),
                input.escape_ascii()
            );
        }
    };
    for (name, bytes) in &seeds {
        run_one(&format!("seed `{name}`"), bytes);
        checked += 1;
    }
    let bytes: Vec<Vec<u8>> = seeds.into_iter().map(|(_, b)| b).collect();
    for (i, input) in mutations(&bytes, count, 0x6c6f_6766_6572_7279)
        .iter()
        .enumerate()
    {
        run_one(&format!("mutation {i}"), input);
        checked += 1;
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_deterministic_bounded_and_varied() {
        let seeds = vec![
            b"<13>1 2026-11-22T10:00:00Z h app - - - one\n".to_vec(),
            vec![],
        ];
        let a = mutations(&seeds, 2000, 7);
        assert_eq!(a, mutations(&seeds, 2000, 7));
        assert_ne!(a, mutations(&seeds, 2000, 8));
        assert!(a.iter().all(|m| m.len() <= MAX_INPUT));
        let distinct: std::collections::HashSet<&Vec<u8>> = a.iter().collect();
        assert!(distinct.len() > 1500, "only {} distinct", distinct.len());
        assert!(a.iter().any(|m| m.windows(2).any(|w| w == b"\r\n")));
    }

    #[test]
    fn run_names_the_failing_input() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("good"), b"fine").expect("seed");
        assert_eq!(run(dir.path(), 10, |_| {}), 11);
        let failed = catch_unwind(|| run(dir.path(), 100, |d| assert!(!d.contains(&b'\n'))));
        let msg = failed.expect_err("a check that fails on line feeds must fail");
        let msg = msg.downcast_ref::<String>().expect("a message");
        assert!(msg.contains("mutation"), "{msg}");
        assert!(msg.contains("\\n"), "{msg}");
    }

    #[test]
    fn a_folder_without_seeds_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(read_seeds(dir.path()).is_err());
        assert!(read_seeds(&dir.path().join("missing")).is_err());
    }
}
