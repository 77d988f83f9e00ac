//! The compact binary record of one object's requests from one batch (a "bin").
//!
//! Layout (all integers LEB128 varints), version 2:
//!
//! ```text
//! version (2)
//! sender count S, then S senders ascending by (requester, client): the requester id as a
//!   delta from the previous sender's (0 when one requester used two clients), and the client id
//! request count N, then the first time (zigzag), then N records:
//!   time delta from the previous record (records are sorted by time)
//!   sender slot in the table above (omitted when S == 1)
//!   header = bytes_sent << 3 | same_bytes << 2 | status class
//!            status class: 0 = 200, 1 = 206, 2 = other 2xx (one more byte: status - 200)
//!            same_bytes: bytes sent equals that of the previous record of the same status class
//!            (the bytes are then omitted)
//! ```
//!
//! Version 1 (before client classes) has requester ids alone in the table; its requests are
//! read with the client [`UNKNOWN_CLIENT`]. Since one requester nearly always uses one client
//! within a bin, the client costs about one byte per bin, not per request. Repeated downloads of
//! one file cost about three bytes each; an object's full history is the concatenation of its
//! bins.

/// The client id of requests whose user agent is unknown, and of every request extracted before
/// clients were recorded.
pub(crate) const UNKNOWN_CLIENT: u32 = 0;

/// One extracted request inside a bin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct BinRequest {
    /// Seconds since the Unix epoch, UTC.
    pub time: i64,
    /// The store's id of the requester.
    pub requester: u64,
    /// The store's id of the client (class and family) the user agent was classified as.
    pub client: u32,
    /// HTTP status, 200 to 299.
    pub status: u16,
    /// Bytes sent.
    pub bytes_sent: u64,
}

/// A bin that cannot be decoded (a corrupt store).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BinError {
    /// The blob ends in the middle of a value.
    #[error("bin is truncated")]
    Truncated,
    /// The version byte is unknown.
    #[error("bin has unknown version {0}")]
    Version(u64),
    /// A field holds an impossible value.
    #[error("bin is corrupt: {0}")]
    Corrupt(&'static str),
}

const VERSION: u64 = 2;

/// Encodes requests into a bin; sorts them first, so the bin does not depend on input order.
pub(crate) fn encode(requests: &mut [BinRequest]) -> Vec<u8> {
    requests.sort_unstable();
    let mut senders: Vec<(u64, u32)> = requests.iter().map(|r| (r.requester, r.client)).collect();
    senders.sort_unstable();
    senders.dedup();

    let mut out = Vec::with_capacity(8 + requests.len() * 4);
    put(&mut out, VERSION);
    put(&mut out, senders.len() as u64);
    let mut previous = 0;
    for &(id, client) in &senders {
        put(&mut out, id - previous);
        put(&mut out, u64::from(client));
        previous = id;
    }
    put(&mut out, requests.len() as u64);
    let Some(first) = requests.first() else {
        return out;
    };
    put(&mut out, zigzag(first.time));
    let mut previous_time = first.time;
    let mut previous_bytes = [None; 3];
    for request in requests.iter() {
        put(&mut out, (request.time - previous_time) as u64);
        previous_time = request.time;
        if senders.len() > 1 {
            let slot = senders
                .binary_search(&(request.requester, request.client))
                .unwrap_or(0);
            put(&mut out, slot as u64);
        }
        let class = match request.status {
            200 => 0,
            206 => 1,
            _ => 2,
        };
        if previous_bytes[class] == Some(request.bytes_sent) {
            put(&mut out, 4 | class as u64);
        } else {
            put(&mut out, (request.bytes_sent << 3) | class as u64);
            previous_bytes[class] = Some(request.bytes_sent);
        }
        if class == 2 {
            out.push(request.status.saturating_sub(200).min(255) as u8);
        }
    }
    out
}

/// Decodes a bin of the object `key`, appending its requests to `out`; the error names the
/// object.
pub(crate) fn decode_object(
    key: &[u8],
    data: &[u8],
    out: &mut Vec<BinRequest>,
) -> anyhow::Result<()> {
    decode_into(data, out)
        .map_err(|error| anyhow::anyhow!("object {}: {error}", String::from_utf8_lossy(key)))
}

/// Decodes a bin, appending its requests to `out`.
pub(crate) fn decode_into(data: &[u8], out: &mut Vec<BinRequest>) -> Result<(), BinError> {
    let mut reader = Reader { data, pos: 0 };
    let version = reader.varint()?;
    if version != VERSION && version != 1 {
        return Err(BinError::Version(version));
    }
    let sender_count = reader.varint()? as usize;
    if sender_count > data.len() {
        return Err(BinError::Corrupt("requester count"));
    }
    let mut senders = Vec::with_capacity(sender_count);
    let mut id = 0u64;
    for _ in 0..sender_count {
        id = id
            .checked_add(reader.varint()?)
            .ok_or(BinError::Corrupt("requester id"))?;
        let client = if version == 1 {
            UNKNOWN_CLIENT
        } else {
            u32::try_from(reader.varint()?).map_err(|_| BinError::Corrupt("client id"))?
        };
        senders.push((id, client));
    }
    let count = reader.varint()? as usize;
    if count == 0 {
        return Ok(());
    }
    if count > data.len() {
        return Err(BinError::Corrupt("request count"));
    }
    out.reserve(count);
    let mut time = unzigzag(reader.varint()?);
    let mut bytes_by_class = [0u64; 3];
    for _ in 0..count {
        time = time
            .checked_add(reader.varint()? as i64)
            .ok_or(BinError::Corrupt("time"))?;
        let (requester, client) = if senders.len() > 1 {
            let slot = reader.varint()? as usize;
            *senders
                .get(slot)
                .ok_or(BinError::Corrupt("requester slot"))?
        } else {
            *senders.first().ok_or(BinError::Corrupt("no requester"))?
        };
        let header = reader.varint()?;
        let class = (header & 3) as usize;
        if class == 3 {
            return Err(BinError::Corrupt("status class"));
        }
        if header & 4 == 0 {
            bytes_by_class[class] = header >> 3;
        }
        let bytes_sent = bytes_by_class[class];
        let status = match class {
            0 => 200,
            1 => 206,
            _ => 200 + u16::from(reader.byte()?),
        };
        out.push(BinRequest {
            time,
            requester,
            client,
            status,
            bytes_sent,
        });
    }
    if reader.pos != data.len() {
        return Err(BinError::Corrupt("trailing bytes"));
    }
    Ok(())
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, BinError> {
        let byte = *self.data.get(self.pos).ok_or(BinError::Truncated)?;
        self.pos += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, BinError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(BinError::Corrupt("varint too long"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(time: i64, requester: u64, status: u16, bytes_sent: u64) -> BinRequest {
        BinRequest {
            time,
            requester,
            client: 3,
            status,
            bytes_sent,
        }
    }

    fn roundtrip(mut requests: Vec<BinRequest>) -> Vec<u8> {
        let data = encode(&mut requests.clone());
        let mut decoded = Vec::new();
        decode_into(&data, &mut decoded).unwrap();
        requests.sort();
        assert_eq!(decoded, requests);
        data
    }

    #[test]
    fn roundtrips_mixed_requests() {
        roundtrip(vec![
            request(1_600_000_000, 7, 200, 1409),
            request(1_600_000_000, 3, 206, 0),
            request(1_500_000_000, 7, 204, u64::MAX >> 3),
            request(-5, 900_000, 299, 1),
            request(1_600_000_100, 3, 200, 1409),
            request(1_600_000_101, 3, 206, 0),
            request(1_600_000_102, 3, 200, 1409),
            request(1_600_000_103, 3, 206, 5),
            request(1_600_000_104, 3, 201, 5),
        ]);
        roundtrip(vec![request(0, 1, 200, 0)]);
        roundtrip(vec![]);
    }

    #[test]
    fn repeated_downloads_are_small() {
        // 1000 downloads of one 6 MB file by one requester, a minute apart: 1 byte time delta +
        // 1 byte header each, plus a fixed header.
        let requests = (0..1000)
            .map(|i| request(1_600_000_000 + i * 60, 42, 200, 6_284_696))
            .collect();
        let data = roundtrip(requests);
        assert!(data.len() < 2 * 1000 + 20, "{} bytes", data.len());
    }

    #[test]
    fn corrupt_bins_are_errors_not_panics() {
        let data = encode(&mut [request(5, 1, 200, 10), request(9, 2, 206, 3)]);
        for cut in 0..data.len() {
            assert!(
                decode_into(&data[..cut], &mut Vec::new()).is_err(),
                "cut {cut}"
            );
        }
        let mut longer = data.clone();
        longer.push(0);
        assert!(decode_into(&longer, &mut Vec::new()).is_err());
        assert!(decode_into(&[3, 0, 0], &mut Vec::new()).is_err());
    }

    #[test]
    fn one_requester_with_two_clients_keeps_both() {
        let mut browser = request(100, 7, 200, 10);
        browser.client = 1;
        let data = roundtrip(vec![
            browser,
            request(101, 7, 206, 5),
            request(102, 9, 200, 10),
        ]);
        // three senders: (7, 1), (7, 3), (9, 3); the second requester delta is 0
        assert_eq!(&data[..8], &[2, 3, 7, 1, 0, 3, 2, 3]);
    }

    #[test]
    fn version_1_bins_are_read_with_the_unknown_client() {
        // written by hand in the version 1 layout: requesters 5 and 8, two requests at times
        // 10 and 12: (slot 1, 200, 300 bytes), (slot 0, 206, 7 bytes)
        let data = [1, 2, 5, 3, 2, 20, 0, 1, 0xe0, 0x12, 2, 0, 57];
        let mut decoded = Vec::new();
        decode_into(&data, &mut decoded).unwrap();
        let old = |time, requester, status, bytes_sent| BinRequest {
            time,
            requester,
            client: UNKNOWN_CLIENT,
            status,
            bytes_sent,
        };
        assert_eq!(decoded, [old(10, 8, 200, 300), old(12, 5, 206, 7)]);
    }
}
