//! The console of one run as the checks see it (symbolised lines with arrival times), and the
//! vocabulary the checks are written in: `require`, `forbid`, `require_line_with`, ….

use crate::qemu::ConsoleLine;
use crate::symbolize;

/// The console output of one run, as the checks see it.
pub struct Console {
    pub lines: Vec<ConsoleLine>,
}

#[cfg(test)]
impl Console {
    /// A console of `texts`, all arriving at time zero (for checks in unit tests).
    pub fn from_texts(texts: &[&str]) -> Console {
        Console {
            lines: texts
                .iter()
                .map(|text| ConsoleLine {
                    at: std::time::Duration::ZERO,
                    text: text.to_string(),
                })
                .collect(),
        }
    }
}

impl Console {
    /// The first line that contains `needle`.
    pub fn find(&self, needle: &str) -> Option<&ConsoleLine> {
        self.lines.iter().find(|line| line.text.contains(needle))
    }

    /// Ok if some line contains `needle`.
    pub fn require(&self, needle: &str) -> Result<(), String> {
        match self.find(needle) {
            Some(_) => Ok(()),
            None => Err(format!("the console never showed {needle:?}")),
        }
    }

    /// Ok if one console line contains every one of `needles`.
    pub fn require_line_with(&self, needles: &[&str]) -> Result<(), String> {
        if self
            .lines
            .iter()
            .any(|line| needles.iter().all(|needle| line.text.contains(needle)))
        {
            Ok(())
        } else {
            Err(format!("no console line contains all of {needles:?}"))
        }
    }

    /// Ok if no console line contains `needle`; else names the first such line.
    pub fn forbid(&self, needle: &str) -> Result<(), String> {
        match self.find(needle) {
            None => Ok(()),
            Some(line) => Err(format!("unexpected console line: {:?}", line.text)),
        }
    }

    /// No program reported a failure or panicked, and no program faulted.
    pub fn require_clean_run(&self) -> Result<(), String> {
        self.forbid(": FAIL")?;
        self.forbid("panic:")?;
        self.forbid("user fault:")?;
        self.forbid("memory accounting drift")?;
        self.forbid("shutdown refused")
    }

    /// The banner: the first line containing `Vigil ` and ` up: `.
    pub fn banner(&self) -> Option<&ConsoleLine> {
        self.lines
            .iter()
            .find(|line| line.text.contains("Vigil ") && line.text.contains(" up: "))
    }

    /// Ok if the banner is present and contains `needle`.
    pub fn require_banner_with(&self, needle: &str) -> Result<(), String> {
        match self.banner() {
            None => Err("no banner line (`Vigil … up: …`) on the console".to_string()),
            Some(banner) if banner.text.contains(needle) => Ok(()),
            Some(banner) => Err(format!(
                "the banner does not say {needle:?}: {:?}",
                banner.text
            )),
        }
    }

    /// Ok if some backtrace frame line contains every one of `needles` (after symbolisation).
    pub fn require_frame_with(&self, needles: &[&str]) -> Result<(), String> {
        let mut frames = self
            .lines
            .iter()
            .filter(|line| symbolize::parse_frame(&line.text).is_some())
            .peekable();
        if frames.peek().is_none() {
            return Err("no backtrace frame lines (`#N pc|ret 0x…`) on the console".to_string());
        }
        if frames.any(|line| needles.iter().all(|needle| line.text.contains(needle))) {
            Ok(())
        } else {
            Err(format!(
                "no backtrace frame line mentions all of {needles:?}"
            ))
        }
    }
}
