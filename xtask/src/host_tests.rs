//! Runs the host tests (`cargo test` on the default members) and counts their results.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use anyhow::{Context, Result};

use crate::kernel::cargo;

/// Passed and failed counts, summed over test binaries or scenarios.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
    }

    pub fn record(&mut self, passed: bool) {
        if passed {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
    }
}

/// Parses libtest's `test result: ok. 5 passed; 1 failed; 0 ignored; …` line.
pub fn parse_result_line(line: &str) -> Option<Tally> {
    let rest = line.trim_start().strip_prefix("test result: ")?;
    let (_verdict, counts) = rest.split_once(". ")?;
    let mut passed = None;
    let mut failed = None;
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        let (Some(number), Some(label)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse::<u64>() else {
            continue;
        };
        match label {
            "passed" => passed = Some(number),
            "failed" => failed = Some(number),
            _ => {}
        }
    }
    Some(Tally {
        passed: passed?,
        failed: failed?,
    })
}

/// Sums the result lines of a cargo test run. A failed run without any failed test (it did
/// not compile, or a test binary crashed before its result line) counts as one failure.
pub fn tally_output<'a>(lines: impl IntoIterator<Item = &'a str>, success: bool) -> Tally {
    let mut tally = Tally::default();
    for line in lines {
        if let Some(result) = parse_result_line(line) {
            tally.add(result);
        }
    }
    if !success && tally.failed == 0 {
        tally.failed = 1;
    }
    tally
}

/// Runs `cargo test --no-fail-fast` in the workspace root (every test binary runs even
/// after one fails, so the tally counts them all), streaming its output.
pub fn run() -> Result<Tally> {
    println!("host tests: cargo test --no-fail-fast");
    let mut child = cargo()
        .args(["test", "--no-fail-fast"])
        .stdout(Stdio::piped())
        .spawn()
        .context("failed to start cargo test")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test output")?;
        println!("{line}");
        if parse_result_line(&line).is_some() {
            lines.push(line);
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    let tally = tally_output(lines.iter().map(String::as_str), status.success());
    if !status.success() {
        println!("host tests: cargo test failed ({status})");
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ok_and_failed_result_lines() {
        assert_eq!(
            parse_result_line(
                "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; \
                 finished in 0.01s"
            ),
            Some(Tally {
                passed: 12,
                failed: 0
            })
        );
        assert_eq!(
            parse_result_line(
                "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; \
                 finished in 1.50s"
            ),
            Some(Tally {
                passed: 3,
                failed: 2
            })
        );
    }

    #[test]
    fn ignores_other_lines() {
        for line in [
            "running 3 tests",
            "test image::tests::accepts ... ok",
            "test result: weird",
            "test result: ok. lots passed; 0 failed",
            "   Doc-tests vigil_abi",
            "",
        ] {
            assert_eq!(parse_result_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn sums_every_test_binary() {
        let output = [
            "test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
            "test result: FAILED. 7 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.10s",
        ];
        assert_eq!(
            tally_output(output, false),
            Tally {
                passed: 12,
                failed: 1
            }
        );
    }

    #[test]
    fn a_failed_run_without_results_counts_as_one_failure() {
        assert_eq!(
            tally_output([], false),
            Tally {
                passed: 0,
                failed: 1
            }
        );
        let passing = ["test result: ok. 4 passed; 0 failed; 0 ignored"];
        assert_eq!(
            tally_output(passing, false),
            Tally {
                passed: 4,
                failed: 1
            }
        );
        assert_eq!(tally_output([], true), Tally::default());
    }

    #[test]
    fn tally_adds_and_records() {
        let mut tally = Tally::default();
        tally.record(true);
        tally.record(false);
        tally.add(Tally {
            passed: 2,
            failed: 3,
        });
        assert_eq!(
            tally,
            Tally {
                passed: 3,
                failed: 4
            }
        );
    }
}
