//! Kernel log levels, as they appear on the console and (later) on the monitor channel.

/// Severity of a kernel log line. Lower numbers are more severe.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
    Trace = 4,
}

impl LogLevel {
    /// Every level, most severe first.
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    /// Fixed-width (5 character) label used on the console.
    pub const fn label(self) -> &'static str {
        match self {
            LogLevel::Error => "ERROR",
            LogLevel::Warn => "WARN ",
            LogLevel::Info => "INFO ",
            LogLevel::Debug => "DEBUG",
            LogLevel::Trace => "TRACE",
        }
    }

    /// Decodes a level from its wire value; `None` for an unknown value.
    pub const fn from_u8(value: u8) -> Option<LogLevel> {
        match value {
            0 => Some(LogLevel::Error),
            1 => Some(LogLevel::Warn),
            2 => Some(LogLevel::Info),
            3 => Some(LogLevel::Debug),
            4 => Some(LogLevel::Trace),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip_through_u8() {
        for level in LogLevel::ALL {
            assert_eq!(LogLevel::from_u8(level as u8), Some(level));
            assert_eq!(level.label().len(), 5);
        }
        assert_eq!(LogLevel::from_u8(5), None);
        assert_eq!(LogLevel::from_u8(255), None);
    }

    #[test]
    fn severity_orders_error_first() {
        assert!(LogLevel::Error < LogLevel::Warn);
        assert!(LogLevel::Debug < LogLevel::Trace);
    }
}
