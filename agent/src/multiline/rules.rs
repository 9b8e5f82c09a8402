//! Where multi-line events begin and end: the user's patterns, and the presets.
//!
//! Each rule looks at one line at a time (and, for the presets, at a small state of the
//! event so far) and says what the line does to the held event. The presets are written
//! as byte checks rather than regexes: they run on every line.

use regex::bytes::Regex;

/// What a line does to the event being held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Ends the held event and begins a new one held with this line.
    Start,
    /// Joins the held event (or begins one if none is held).
    Continue,
    /// Ends the held event and is an event on its own, passed on at once.
    Single,
    /// A blank line that may be inside the held event or after it: decided by the next
    /// line (held aside meanwhile).
    Defer,
    /// Ends the held event (and a deferred blank line); ask again with nothing held.
    Restart,
}

/// Where a Python traceback is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PyPhase {
    /// No traceback held.
    Idle,
    /// In the frames: indented lines continue; the first unindented line is the exception.
    Frames,
    /// An exception group: all its lines are indented.
    Group,
    /// The exception line was read; a blank line may start a chained exception.
    Raised,
    /// Raised, then a blank line (deferred).
    RaisedBlank,
    /// "During handling of the above exception..." or "The above exception was...".
    Chain,
    /// The chain message and a blank line.
    ChainBlank,
}

/// Where a Go panic dump is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GoPhase {
    /// No dump held.
    Idle,
    /// In a dump.
    Dump,
    /// In a dump, after a blank line (deferred).
    DumpBlank,
}

/// The compiled rule of a joiner.
#[derive(Debug, Clone)]
pub(super) enum Rules {
    /// A matching line starts an event, others continue it.
    Start(Regex),
    /// A matching line continues the event, others start one.
    Continue(Regex),
    /// Java stack traces.
    Java,
    /// Python tracebacks.
    Python(PyPhase),
    /// Go panics and goroutine dumps.
    Go(GoPhase),
}

impl Rules {
    /// Forgets the state of the held event (it was emitted).
    pub(super) fn reset(&mut self) {
        match self {
            Rules::Python(p) => *p = PyPhase::Idle,
            Rules::Go(p) => *p = GoPhase::Idle,
            Rules::Start(_) | Rules::Continue(_) | Rules::Java => {}
        }
    }

    /// What `line` does, given that the held event has `held_lines` lines (0: none held).
    pub(super) fn classify(&mut self, line: &[u8], held_lines: usize) -> Action {
        let holding = held_lines > 0;
        match self {
            Rules::Start(re) => {
                if holding && !re.is_match(line) {
                    Action::Continue
                } else {
                    Action::Start
                }
            }
            Rules::Continue(re) => {
                if holding && re.is_match(line) {
                    Action::Continue
                } else {
                    Action::Start
                }
            }
            Rules::Java => {
                if holding && java_continues(line, held_lines) {
                    Action::Continue
                } else {
                    Action::Start
                }
            }
            Rules::Python(phase) => python(phase, line, holding),
            Rules::Go(phase) => go(phase, line, holding),
        }
    }
}

fn indented(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ' | b'\t'))
}

/// Java: indented lines (`\tat ...`, `\t... 12 more`, `\tSuppressed: ...`), `Caused by:`,
/// and, right after the first line of an event (the log message), an exception header
/// such as `java.lang.IllegalStateException: boom`.
fn java_continues(line: &[u8], held_lines: usize) -> bool {
    indented(line)
        || line.starts_with(b"Caused by:")
        || line.starts_with(b"Wrapped by:")
        || (held_lines == 1 && is_java_exception_header(line))
}

/// `pkg.Name: message` or `pkg.Name` where `Name` ends in Exception, Error or Throwable.
fn is_java_exception_header(line: &[u8]) -> bool {
    let name = match memchr::memchr(b':', line) {
        Some(i) => &line[..i],
        None => line,
    };
    let ident = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'.');
    name.contains(&b'.')
        && !name.starts_with(b".")
        && name.iter().all(ident)
        && [&b"Exception"[..], b"Error", b"Throwable"]
            .iter()
            .any(|s| name.ends_with(s))
}

fn is_traceback_header(line: &[u8]) -> bool {
    line.trim_ascii_end() == b"Traceback (most recent call last):"
}

fn is_group_header(line: &[u8]) -> bool {
    line.trim_ascii() == b"+ Exception Group Traceback (most recent call last):"
}

fn is_chain_message(line: &[u8]) -> bool {
    let line = line.trim_ascii_end();
    line == b"During handling of the above exception, another exception occurred:"
        || line == b"The above exception was the direct cause of the following exception:"
}

fn python(phase: &mut PyPhase, line: &[u8], holding: bool) -> Action {
    if !holding {
        *phase = PyPhase::Idle;
    }
    match *phase {
        PyPhase::Idle if is_traceback_header(line) => {
            *phase = PyPhase::Frames;
            Action::Start
        }
        PyPhase::Idle if is_group_header(line) => {
            *phase = PyPhase::Group;
            Action::Start
        }
        PyPhase::Idle => Action::Single,
        PyPhase::Frames if is_traceback_header(line) || is_group_header(line) => Action::Restart,
        PyPhase::Frames if indented(line) => Action::Continue,
        PyPhase::Frames if line.is_empty() => Action::Restart,
        PyPhase::Frames => {
            // `ValueError: bad value`, `KeyboardInterrupt`, `mod.CustomError: ...`
            *phase = PyPhase::Raised;
            Action::Continue
        }
        PyPhase::Group if indented(line) && !is_group_header(line) => Action::Continue,
        PyPhase::Group => Action::Restart,
        PyPhase::Raised if line.is_empty() => {
            *phase = PyPhase::RaisedBlank;
            Action::Defer
        }
        PyPhase::RaisedBlank if is_chain_message(line) => {
            *phase = PyPhase::Chain;
            Action::Continue
        }
        PyPhase::Chain if line.is_empty() => {
            *phase = PyPhase::ChainBlank;
            Action::Continue
        }
        PyPhase::Chain | PyPhase::ChainBlank if is_traceback_header(line) => {
            *phase = PyPhase::Frames;
            Action::Continue
        }
        PyPhase::Raised | PyPhase::RaisedBlank | PyPhase::Chain | PyPhase::ChainBlank => {
            Action::Restart
        }
    }
}

/// The first line of a Go panic or runtime dump.
fn is_go_dump_start(line: &[u8]) -> bool {
    line.starts_with(b"panic: ")
        || line.starts_with(b"fatal error: ")
        || is_goroutine_header(line)
        || is_signal_line(line)
}

/// `goroutine 1 [running]:` (and Go 1.23's `goroutine 1 gp=... m=0 mp=... [running]:`).
fn is_goroutine_header(line: &[u8]) -> bool {
    line.strip_prefix(b"goroutine ")
        .is_some_and(|r| r.first().is_some_and(u8::is_ascii_digit) && r.ends_with(b":"))
}

/// `SIGSEGV: segmentation violation`, `SIGQUIT: quit`.
fn is_signal_line(line: &[u8]) -> bool {
    line.strip_prefix(b"SIG").is_some_and(|r| {
        let n = r.iter().take_while(|c| c.is_ascii_uppercase()).count();
        n > 0 && r[n..].starts_with(b": ")
    })
}

/// A line that belongs inside a Go dump (other than a blank line).
fn is_go_dump_line(line: &[u8]) -> bool {
    indented(line)
        || is_go_dump_start(line)
        || line.starts_with(b"created by ")
        || line.starts_with(b"[signal ")
        || line.starts_with(b"[originating from goroutine")
        || line.starts_with(b"...additional frames elided...")
        || line.starts_with(b"exit status ")
        || line.starts_with(b"PC=")
        || is_go_frame(line)
        || is_register(line)
}

/// A function line of a stack: `main.(*Server).handle(0xc000010000, {0x6e3c40, 0x1})`,
/// `main.main()`, `panic({0x4a3f20?, 0x55b1d0?})`: no space before the first `(`, and a
/// closing `)` at the end.
fn is_go_frame(line: &[u8]) -> bool {
    let Some(open) = memchr::memchr(b'(', line) else {
        return false;
    };
    open > 0 && line.ends_with(b")") && !line[..open].iter().any(u8::is_ascii_whitespace)
}

/// A register line of a signal dump: `rax    0x0`.
fn is_register(line: &[u8]) -> bool {
    let n = line
        .iter()
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .count();
    (2..=6).contains(&n) && line[n..].trim_ascii_start().starts_with(b"0x")
}

fn go(phase: &mut GoPhase, line: &[u8], holding: bool) -> Action {
    if !holding {
        *phase = GoPhase::Idle;
    }
    match *phase {
        GoPhase::Idle if is_go_dump_start(line) => {
            *phase = GoPhase::Dump;
            Action::Start
        }
        GoPhase::Idle => Action::Single,
        GoPhase::Dump if line.is_empty() => {
            *phase = GoPhase::DumpBlank;
            Action::Defer
        }
        GoPhase::Dump | GoPhase::DumpBlank if !line.is_empty() && is_go_dump_line(line) => {
            *phase = GoPhase::Dump;
            Action::Continue
        }
        GoPhase::Dump | GoPhase::DumpBlank => Action::Restart,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shapes() {
        assert!(is_java_exception_header(
            b"java.lang.IllegalStateException: boom"
        ));
        assert!(is_java_exception_header(b"com.example.Outer$InnerError"));
        assert!(!is_java_exception_header(b"Exception in thread \"main\" x"));
        assert!(!is_java_exception_header(b"RuntimeException: no package"));
        assert!(!is_java_exception_header(
            b"2026-11-22 ERROR x.y.FooError: z"
        ));
        assert!(is_goroutine_header(
            b"goroutine 18 [chan receive, 2 minutes]:"
        ));
        assert!(is_goroutine_header(
            b"goroutine 1 gp=0xc000002380 m=0 mp=0x5a8 [running]:"
        ));
        assert!(!is_goroutine_header(b"goroutine leak detected"));
        assert!(is_signal_line(b"SIGSEGV: segmentation violation"));
        assert!(!is_signal_line(b"SIG: x"));
        assert!(is_go_frame(
            b"main.(*Server).handle(0xc000010000, {0x6e3c40, 0x1})"
        ));
        assert!(is_go_frame(b"panic({0x4a3f20?, 0x55b1d0?})"));
        assert!(!is_go_frame(b"2026/11/22 10:00:00 call f(x)"));
        assert!(!is_go_frame(b"(x)"));
        assert!(is_register(b"rax    0x0"));
        assert!(!is_register(b"a 0x0"));
        assert!(!is_register(b"listening on 0x0"));
        assert!(is_traceback_header(b"Traceback (most recent call last):"));
        assert!(is_group_header(
            b"  + Exception Group Traceback (most recent call last):"
        ));
    }
}
