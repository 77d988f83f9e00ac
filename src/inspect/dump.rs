//! `s3tally dump`: every extracted request as TSV, so anyone can check what was extracted. Keys are
//! written as in the log, control bytes as `%XX` so that every row has seven fields. The client
//! is the class and family its user agent was classified as (`-` for no family); requests
//! extracted before clients were recorded are `unknown`.

use std::io::Write;

use crate::bins::{self, BinRequest};
use crate::clients::ClientClass;
use crate::output::{escape_control_bytes, escape_controls};
use crate::privacy::requester_id;
use crate::store::{RequesterId, Store};

/// The header line of the dump.
pub(crate) const HEADER: &str =
    "object_key\ttimestamp\tbytes_sent\tstatus\trequester\tclient_class\tclient_family";

/// Writes every request (or those of one object key) sorted by key, time and requester; returns
/// how many rows were written.
pub(crate) fn dump(
    store: &Store,
    only: Option<&[u8]>,
    out: &mut (impl Write + ?Sized),
) -> anyhow::Result<u64> {
    let requester_ids: rustc_hash::FxHashMap<RequesterId, String> = store
        .requester_indexes()?
        .into_iter()
        .map(|(id, index)| (id, requester_id(&index)))
        .collect();
    let clients: Vec<String> = store
        .clients()?
        .iter()
        .map(|client| {
            let family = if client.family.is_empty() {
                "-"
            } else {
                &client.family
            };
            format!("{}\t{}", client.class.as_str(), escape_controls(family))
        })
        .collect();
    let unknown = format!("{}\t-", ClientClass::Unknown.as_str());
    writeln!(out, "{HEADER}")?;
    let mut rows = 0;
    let mut current_key: Vec<u8> = Vec::new();
    let mut requests: Vec<BinRequest> = Vec::new();
    let mut flush = |key: &[u8], requests: &mut Vec<BinRequest>| -> anyhow::Result<()> {
        let mut sorted: Vec<(i64, &str, u16, u64, &str)> = requests
            .iter()
            .map(|r| {
                let requester = requester_ids
                    .get(&RequesterId(r.requester))
                    .map_or("?", String::as_str);
                let client = clients.get(r.client as usize).unwrap_or(&unknown);
                (r.time, requester, r.status, r.bytes_sent, client.as_str())
            })
            .collect();
        // a key is written as in the log, but a control byte (a tab, a line end) could break the
        // row: those are written `%XX`
        let key_text = escape_control_bytes(key);
        sorted.sort_unstable();
        for (time, requester, status, bytes_sent, client) in sorted {
            out.write_all(&key_text)?;
            writeln!(
                out,
                "\t{}\t{bytes_sent}\t{status}\t{requester}\t{client}",
                format_time(time)
            )?;
            rows += 1;
        }
        requests.clear();
        Ok(())
    };
    store.visit_bins(only, |key, data| {
        if key != current_key.as_slice() {
            flush(&current_key, &mut requests)?;
            current_key = key.to_vec();
        }
        bins::decode_object(key, data, &mut requests)
    })?;
    flush(&current_key, &mut requests)?;
    Ok(rows)
}

/// RFC 3339 UTC with seconds, like `2020-01-01T05:06:35Z`.
pub(crate) fn format_time(time: i64) -> String {
    chrono::DateTime::from_timestamp(time, 0).map_or_else(
        || time.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        // 1577855195 = 2020-01-01T05:06:35Z (18262 days after the epoch, plus 5:06:35)
        assert_eq!(format_time(1_577_855_195), "2020-01-01T05:06:35Z");
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
    }
}
