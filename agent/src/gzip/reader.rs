//! [`GzipReader`]: one compressed file decoded member by member, with the content offset
//! and the member starts a resume needs.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, ErrorKind, Read};
use std::os::unix::fs::FileExt;

use flate2::bufread::GzDecoder;

/// Compressed bytes buffered per file.
const INPUT_BUFFER: usize = 32 << 10;

/// Member starts kept per file at most (see [`MemberLog::push`]).
pub(super) const MAX_MEMBER_STARTS: usize = 1024;

/// Where a gzip member starts: its offset in the file and the content offset of its first
/// decompressed byte. Also the end of the member before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberStart {
    /// Offset of the member's first byte in the compressed file.
    pub file_offset: u64,
    /// Decompressed bytes before the member.
    pub content_offset: u64,
}

/// The member starts of one file that a resume may still need: the latest one at or
/// before the position of the last line put into a batch, and every one after it.
#[derive(Debug, Clone)]
pub struct MemberLog {
    starts: VecDeque<MemberStart>,
}

impl MemberLog {
    /// A log holding `first` (where decoding began).
    pub fn new(first: MemberStart) -> MemberLog {
        MemberLog {
            starts: VecDeque::from([first]),
        }
    }

    /// Notes a member start met while decoding. Starts at or before the last one noted
    /// (met again after a resume) are ignored; a start at the same content offset as the
    /// last one replaces it (it is further on, so cheaper to resume from). At most
    /// [`MAX_MEMBER_STARTS`] are kept: beyond that the second oldest is dropped, which
    /// only makes a resume from that stretch decode more.
    pub fn push(&mut self, start: MemberStart) {
        match self.starts.back_mut() {
            Some(last) if start.file_offset <= last.file_offset => return,
            Some(last) if start.content_offset == last.content_offset => {
                *last = start;
                return;
            }
            _ => {}
        }
        self.starts.push_back(start);
        if self.starts.len() > MAX_MEMBER_STARTS {
            self.starts.remove(1);
        }
    }

    /// The latest member start at or before content offset `offset`: where decoding
    /// resumes to reach `offset`.
    pub fn at(&self, offset: u64) -> MemberStart {
        self.starts
            .iter()
            .rev()
            .find(|s| s.content_offset <= offset)
            .or(self.starts.front())
            .copied()
            .unwrap_or_default()
    }

    /// Drops the starts no position at or after `offset` needs.
    pub fn prune(&mut self, offset: u64) {
        while self.starts.len() > 1 && self.starts[1].content_offset <= offset {
            self.starts.pop_front();
        }
    }

    /// Starts held (for tests).
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Never true: a log holds at least the start decoding began at.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

/// What one [`GzipReader::read`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// This many decompressed bytes are at the start of the buffer.
    Data(usize),
    /// This many decompressed bytes were discarded on the way to the resume offset (the
    /// buffer's content is meaningless).
    Skipped(usize),
    /// Nothing more now, in the middle of a member: its remaining bytes are not on disk
    /// yet (the file is being written, or was cut short).
    Pending,
    /// Nothing more now, at the end of a member: the file is complete as far as it goes.
    Complete,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum GzipError {
    /// Reading the file failed; the decoder is intact and the read may be retried.
    #[error("reading the file: {0}")]
    Io(#[source] io::Error),
    /// The bytes do not decode (bad header, bad data, wrong checksum, or something other
    /// than a gzip member after the end of one). Nothing more can be read from the file.
    #[error("corrupt gzip data at or after file offset {file_offset}: {source}")]
    Corrupt {
        /// Start of the member that failed.
        file_offset: u64,
        /// The decoder's complaint.
        #[source]
        source: io::Error,
    },
}

/// The file as the decoder sees it: bytes read with `pread` from a position of its own.
/// The end of what is on disk reads as "would block", never as the end of the stream, so
/// a member cut short waits for more instead of failing.
struct Growing {
    file: File,
    pos: u64,
    /// The last error came from the file, not from the data.
    io_failed: bool,
}

impl Read for Growing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.file.read_at(buf, self.pos) {
            Ok(0) if !buf.is_empty() => Err(ErrorKind::WouldBlock.into()),
            Ok(n) => {
                self.pos += n as u64;
                Ok(n)
            }
            Err(e) => {
                self.io_failed = e.kind() != ErrorKind::Interrupted;
                Err(e)
            }
        }
    }
}

enum State {
    /// At a member boundary (or the start): the next bytes, if any, start a member.
    Between(BufReader<Growing>),
    /// Inside the member that started at `start`.
    Member {
        decoder: GzDecoder<BufReader<Growing>>,
        start: MemberStart,
    },
}

/// A compressed file read as its decompressed content, from a member start on.
pub struct GzipReader {
    /// `None` only after a corrupt member (or while switching states).
    state: Option<State>,
    /// Content offset of the next decompressed byte.
    out: u64,
    /// Decompressed bytes still to discard before data is returned.
    skip: u64,
    /// Discard everything there is now (`read_from = "end"`): `skip` is unbounded until
    /// the first time nothing more can be read.
    skip_to_end: bool,
    /// The file, kept when the state is gone (after a corrupt member).
    spent: Option<File>,
}

impl std::fmt::Debug for GzipReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzipReader")
            .field("out", &self.out)
            .field("skip", &self.skip)
            .field("skip_to_end", &self.skip_to_end)
            .finish_non_exhaustive()
    }
}

impl GzipReader {
    /// A reader decoding `file` from `start` (a member start, or the file's beginning) that
    /// discards the first `skip` decompressed bytes.
    pub fn open(file: File, start: MemberStart, skip: u64) -> GzipReader {
        let input = Growing {
            file,
            pos: start.file_offset,
            io_failed: false,
        };
        GzipReader {
            state: Some(State::Between(BufReader::with_capacity(
                INPUT_BUFFER,
                input,
            ))),
            out: start.content_offset,
            skip,
            skip_to_end: false,
            spent: None,
        }
    }

    /// A reader that discards everything the file holds now and returns what is added
    /// later (`read_from = "end"`).
    pub fn open_at_end(file: File) -> GzipReader {
        let mut r = GzipReader::open(file, MemberStart::default(), 0);
        r.skip_to_end = true;
        r
    }

    /// The content offset reading stands at: the next byte [`GzipReader::read`] returns,
    /// counting bytes still to be skipped as passed.
    pub fn position(&self) -> u64 {
        self.out + self.skip
    }

    /// True while bytes are discarded on the way to the resume offset (or to the end).
    pub fn is_skipping(&self) -> bool {
        self.skip > 0 || self.skip_to_end
    }

    /// Compressed bytes read from the file so far (including what is buffered).
    pub fn file_position(&self) -> u64 {
        self.input().map_or(0, |g| g.pos)
    }

    /// True inside a member (its end not read yet).
    pub fn in_member(&self) -> bool {
        matches!(self.state, Some(State::Member { .. }))
    }

    /// The file being read.
    pub fn file(&self) -> Option<&File> {
        self.input().map(|g| &g.file).or(self.spent.as_ref())
    }

    /// Gives the file back.
    pub fn into_file(self) -> Option<File> {
        match self.state {
            Some(State::Between(b)) => Some(b.into_inner().file),
            Some(State::Member { decoder, .. }) => Some(decoder.into_inner().into_inner().file),
            None => self.spent,
        }
    }

    fn input(&self) -> Option<&Growing> {
        match &self.state {
            Some(State::Between(b)) => Some(b.get_ref()),
            Some(State::Member { decoder, .. }) => Some(decoder.get_ref().get_ref()),
            None => None,
        }
    }

    /// Decompresses into `buf`, noting member ends in `members`. Reads at most one member's
    /// worth: a call never returns bytes of two members.
    pub fn read(&mut self, buf: &mut [u8], members: &mut MemberLog) -> Result<Step, GzipError> {
        if buf.is_empty() {
            return Ok(Step::Data(0));
        }
        loop {
            let Some(state) = self.state.take() else {
                return Err(GzipError::Corrupt {
                    file_offset: 0,
                    source: io::Error::other("the file already failed to decode"),
                });
            };
            match state {
                State::Between(mut input) => match input.fill_buf().map(|b| b.len()) {
                    Ok(buffered) if buffered > 0 => {
                        let start = MemberStart {
                            file_offset: input.get_ref().pos - buffered as u64,
                            content_offset: self.out,
                        };
                        self.state = Some(State::Member {
                            decoder: GzDecoder::new(input),
                            start,
                        });
                    }
                    Ok(_) => {
                        // Not returned by `Growing`; the same as no data yet.
                        self.state = Some(State::Between(input));
                        return Ok(self.idle(Step::Complete));
                    }
                    Err(e) => {
                        input.get_mut().io_failed = false;
                        self.state = Some(State::Between(input));
                        match e.kind() {
                            ErrorKind::WouldBlock => return Ok(self.idle(Step::Complete)),
                            ErrorKind::Interrupted => continue,
                            _ => return Err(GzipError::Io(e)),
                        }
                    }
                },
                State::Member { mut decoder, start } => {
                    let want = if self.skip_to_end {
                        buf.len()
                    } else if self.skip > 0 {
                        buf.len()
                            .min(usize::try_from(self.skip).unwrap_or(usize::MAX))
                    } else {
                        buf.len()
                    };
                    match decoder.read(&mut buf[..want]) {
                        Ok(0) => {
                            // The member's trailer checked out: the next bytes start a
                            // new member (or nothing yet).
                            let input = decoder.into_inner();
                            let end = MemberStart {
                                file_offset: input.get_ref().pos - input.buffer().len() as u64,
                                content_offset: self.out,
                            };
                            members.push(end);
                            self.state = Some(State::Between(input));
                        }
                        Ok(n) => {
                            self.state = Some(State::Member { decoder, start });
                            self.out += n as u64;
                            if self.skip_to_end {
                                return Ok(Step::Skipped(n));
                            }
                            if self.skip > 0 {
                                self.skip -= n as u64;
                                return Ok(Step::Skipped(n));
                            }
                            return Ok(Step::Data(n));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            self.state = Some(State::Member { decoder, start });
                            return Ok(self.idle(Step::Pending));
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {
                            self.state = Some(State::Member { decoder, start });
                        }
                        Err(e) => {
                            let mut input = decoder.into_inner().into_inner();
                            if std::mem::take(&mut input.io_failed) {
                                // The decoder may have taken the failure for the data's:
                                // start the member again and discard what it gave.
                                input.pos = start.file_offset;
                                self.skip += self.out - start.content_offset;
                                self.out = start.content_offset;
                                self.state = Some(State::Between(BufReader::with_capacity(
                                    INPUT_BUFFER,
                                    input,
                                )));
                                return Err(GzipError::Io(e));
                            }
                            self.spent = Some(input.file);
                            return Err(GzipError::Corrupt {
                                file_offset: start.file_offset,
                                source: e,
                            });
                        }
                    }
                }
            }
        }
    }

    /// Nothing more can be read now: a skip to the end is done.
    fn idle(&mut self, step: Step) -> Step {
        self.skip_to_end = false;
        step
    }
}
