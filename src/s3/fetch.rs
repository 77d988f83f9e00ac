//! Concurrent downloads handed to the parsing threads as readers.
//!
//! Up to `concurrency` objects are asked at once; each, as soon as its answer starts, is handed
//! over as a [`Body`]: a reader over its bytes as they arrive, of which at most
//! [`CHUNKS_BUFFERED`] pieces wait, so that memory stays bounded whatever the objects' sizes.
//! The parsing threads take the bodies in the order they are ready; while they parse, the other
//! downloads go on.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::ObjectStore;
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;

use super::{Bucket, S3Error};

/// Pieces of one object's body waiting for its reader, at most.
pub(crate) const CHUNKS_BUFFERED: usize = 64;

/// One object's body as it arrives.
pub(crate) struct Body {
    chunks: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for Body {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if !self.current.is_empty() || buffer.is_empty() {
                let n = self.current.len().min(buffer.len());
                buffer[..n].copy_from_slice(&self.current.split_to(n));
                return Ok(n);
            }
            match self.chunks.blocking_recv() {
                Some(Ok(bytes)) => self.current = bytes,
                Some(Err(error)) => return Err(error),
                None => return Ok(0),
            }
        }
    }
}

/// A download handed over: the object's number, and its body or why it could not be read.
pub(crate) type Fetched = (usize, Result<Body, String>);

impl Bucket {
    /// Starts downloading `keys` (each with its number), at most the bucket's concurrency at
    /// once; the bodies come out of the returned channel as their answers start. Dropping the
    /// receiver stops the downloads not started yet.
    pub(crate) fn fetch(&self, keys: Vec<(usize, String)>) -> std::sync::mpsc::Receiver<Fetched> {
        let (ready, bodies) = std::sync::mpsc::channel();
        let store = self.store.clone();
        let bucket: Arc<str> = self.name.as_str().into();
        let concurrency = self.concurrency;
        let abandoned = Arc::new(AtomicBool::new(false));
        self.runtime.spawn(async move {
            futures_util::stream::iter(keys)
                .for_each_concurrent(concurrency, |(index, key)| {
                    let store = store.clone();
                    let ready = ready.clone();
                    let bucket = bucket.clone();
                    let abandoned = abandoned.clone();
                    async move {
                        if !abandoned.load(Ordering::Relaxed)
                            && !fetch_one(&store, &bucket, index, &key, &ready).await
                        {
                            abandoned.store(true, Ordering::Relaxed);
                        }
                    }
                })
                .await;
        });
        bodies
    }
}

/// Downloads one object into its body's channel; `false` when nobody takes bodies any more.
async fn fetch_one(
    store: &AmazonS3,
    bucket: &str,
    index: usize,
    key: &str,
    ready: &std::sync::mpsc::Sender<Fetched>,
) -> bool {
    let url = format!("s3://{bucket}/{key}");
    let failed = |message: String| ready.send((index, Err(message))).is_ok();
    let path = match ObjectPath::parse(key) {
        Ok(path) => path,
        Err(error) => return failed(format!("not a key S3 can be asked for: {error}")),
    };
    let answer = match store.get(&path).await {
        Ok(answer) => answer,
        Err(error) => return failed(S3Error::from_store(url, &error).to_string()),
    };
    let (sender, chunks) = tokio::sync::mpsc::channel(CHUNKS_BUFFERED);
    let body = Body {
        chunks,
        current: Bytes::new(),
    };
    if ready.send((index, Ok(body))).is_err() {
        return false;
    }
    let mut stream = answer.into_stream();
    while let Some(piece) = stream.next().await {
        let piece =
            piece.map_err(|error| std::io::Error::other(S3Error::from_store(url.clone(), &error)));
        let last = piece.is_err();
        // a reader that went away (its file failed, or a stop) ends this download
        if sender.send(piece).await.is_err() || last {
            break;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_reads_its_pieces_in_order_then_ends_or_fails() {
        let (sender, chunks) = tokio::sync::mpsc::channel(4);
        let mut body = Body {
            chunks,
            current: Bytes::new(),
        };
        let writer = std::thread::spawn(move || {
            for piece in [&b"ab"[..], b"", b"cde"] {
                sender.blocking_send(Ok(Bytes::from_static(piece))).unwrap();
            }
        });
        let mut text = String::new();
        body.read_to_string(&mut text).unwrap();
        writer.join().unwrap();
        assert_eq!(text, "abcde");

        let (sender, chunks) = tokio::sync::mpsc::channel(4);
        let mut body = Body {
            chunks,
            current: Bytes::new(),
        };
        sender.blocking_send(Ok(Bytes::from_static(b"x"))).unwrap();
        sender
            .blocking_send(Err(std::io::Error::other("connection reset")))
            .unwrap();
        let error = body.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(error.to_string(), "connection reset");
    }
}
