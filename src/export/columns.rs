//! One partition's rows as a Parquet file: the schema, the writer's settings (dictionary encoding
//! for repeated strings, delta encoding for the times, zstd, page statistics), and the columns
//! built from the rows sorted by key, then time (each key's rows together: its dictionary index
//! repeats, and the times rise within it).
//!
//! Written through Arrow arrays: the strings go in as dictionary arrays, so the writer hashes each
//! distinct string once, not once a row (the `parquet` crate's column writers alone build in half
//! the time but write 1.6 times slower).

use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, DictionaryArray, Int16Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::rows::{RowPlace, Rows};

/// Rows per row group: above what one file holds (at most `--rows-in-memory`), so a file is one
/// row group; about 128 MB at the few bytes a row takes.
const ROW_GROUP_ROWS: usize = 32 * 1024 * 1024;

/// The zstd level: higher levels barely shrink the files (what is left is mostly the entropy of
/// the object keys) and cost time.
const ZSTD_LEVEL: i32 = 1;

/// Largest dictionary page of a column chunk.
const DICTIONARY_BYTES: usize = 64 * 1024 * 1024;

/// What every row's requester maps to: its region as published and its country.
pub(crate) struct Regions {
    /// The region index of each requester id (`missing` when unknown).
    pub of_requester: rustc_hash::FxHashMap<u64, u32>,
    /// By index: the label as published, and the ISO 3166-1 alpha-2 country of a place.
    pub labels: Vec<(String, Option<String>)>,
    /// The index of `missing`.
    pub missing: u32,
}

/// The columns, in order. `requester` only when kept.
pub(crate) fn schema(with_requester: bool) -> Arc<Schema> {
    let text = || DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut fields = vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("dataset", text(), false),
        Field::new("asset", text(), false),
        Field::new("object_key", text(), false),
        Field::new("bytes_sent", DataType::Int64, false),
        Field::new("status", DataType::Int16, false),
        Field::new("download", DataType::Boolean, false),
    ];
    if with_requester {
        fields.push(Field::new("requester", DataType::Int64, false));
    }
    fields.extend([
        Field::new("region", text(), false),
        Field::new("country", text(), true),
        Field::new("in_archive", DataType::Boolean, false),
    ]);
    Arc::new(Schema::new(fields))
}

/// The writer's settings.
fn properties() -> parquet::errors::Result<WriterProperties> {
    let time = ColumnPath::from("time");
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_dictionary_enabled(true)
        // the distinct keys and assets of a day (tens of MB for the largest archives) stay one
        // dictionary instead of falling back to plain strings
        .set_dictionary_page_size_limit(DICTIONARY_BYTES)
        // times rising within each key: small deltas
        .set_column_dictionary_enabled(time.clone(), false)
        .set_column_encoding(time, Encoding::DELTA_BINARY_PACKED)
        .set_created_by(format!("s3tally {}", env!("CARGO_PKG_VERSION")))
        .build())
}

/// A dictionary column: each row's index into `values` (the keys array is shared, not copied).
fn dictionary(keys: &Int32Array, values: Vec<&str>) -> anyhow::Result<ArrayRef> {
    Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
        keys.clone(),
        Arc::new(StringArray::from(values)),
    )?))
}

/// Numbers the entries of `table` the rows use (`indexes`, one per row) in order of first use:
/// each row's number, and the entries by number.
fn number_by_first_use<T>(
    indexes: impl Iterator<Item = u32>,
    table: &[T],
) -> (Int32Array, Vec<&T>) {
    let mut numbers: rustc_hash::FxHashMap<u32, i32> = rustc_hash::FxHashMap::default();
    let mut used = Vec::new();
    let keys: Vec<i32> = indexes
        .map(|index| {
            *numbers.entry(index).or_insert_with(|| {
                used.push(&table[index as usize]);
                (used.len() - 1) as i32
            })
        })
        .collect();
    (Int32Array::from(keys), used)
}

/// Writes `rows` (sorted by key, then time, first) as one Parquet file to `out`.
pub(crate) fn write(
    rows: &Rows,
    places: &[RowPlace],
    regions: &Regions,
    with_requester: bool,
    out: impl std::io::Write + Send,
) -> anyhow::Result<()> {
    let mut order: Vec<u32> = (0..u32::try_from(rows.len())?).collect();
    order.sort_unstable_by_key(|&i| {
        let i = i as usize;
        (rows.place[i], rows.time[i], rows.requester[i])
    });
    // the places and regions of this file, numbered in order of first use
    let (place_keys, used_places) =
        number_by_first_use(order.iter().map(|&i| rows.place[i as usize]), places);
    let region_of = |i: u32| {
        regions
            .of_requester
            .get(&rows.requester[i as usize])
            .copied()
            .unwrap_or(regions.missing)
    };
    let (region_keys, used_regions) =
        number_by_first_use(order.iter().map(|&i| region_of(i)), &regions.labels);
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMillisecondArray::from(
                order
                    .iter()
                    .map(|&i| rows.time[i as usize] * 1000)
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        dictionary(
            &place_keys,
            used_places.iter().map(|p| &*p.dataset).collect(),
        )?,
        dictionary(
            &place_keys,
            used_places.iter().map(|p| p.asset.as_str()).collect(),
        )?,
        dictionary(
            &place_keys,
            used_places.iter().map(|p| p.object_key.as_str()).collect(),
        )?,
        Arc::new(Int64Array::from_iter_values(order.iter().map(|&i| {
            rows.bytes_sent[i as usize].min(i64::MAX as u64) as i64
        }))),
        Arc::new(Int16Array::from_iter_values(
            order.iter().map(|&i| rows.status[i as usize] as i16),
        )),
        Arc::new(
            order
                .iter()
                .map(|&i| Some(rows.status[i as usize] == 200))
                .collect::<BooleanArray>(),
        ),
    ];
    if with_requester {
        columns.push(Arc::new(Int64Array::from_iter_values(
            order.iter().map(|&i| rows.requester[i as usize] as i64),
        )));
    }
    columns.push(dictionary(
        &region_keys,
        used_regions
            .iter()
            .map(|(label, _)| label.as_str())
            .collect(),
    )?);
    // a row without a country is null in the keys, not a null value of the dictionary
    let countries: Vec<&str> = used_regions
        .iter()
        .map(|(_, country)| country.as_deref().unwrap_or(""))
        .collect();
    let country_keys: Int32Array = region_keys
        .values()
        .iter()
        .map(|&k| used_regions[k as usize].1.is_some().then_some(k))
        .collect();
    columns.push(Arc::new(DictionaryArray::<Int32Type>::try_new(
        country_keys,
        Arc::new(StringArray::from(countries)),
    )?));
    columns.push(Arc::new(
        place_keys
            .values()
            .iter()
            .map(|&k| Some(used_places[k as usize].in_archive))
            .collect::<BooleanArray>(),
    ));
    let batch = RecordBatch::try_new(schema(with_requester), columns)?;
    let mut writer = ArrowWriter::try_new(out, batch.schema(), Some(properties()?))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}
