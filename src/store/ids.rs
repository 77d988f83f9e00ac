//! Typed ids of the store's rows, so that an object id is never passed where a requester id is
//! expected. They convert to and from `SQLite` integers here and nowhere else.

use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::logs::LogIdentity;

/// The id of an object (one object key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjectId(pub i64);

/// The id of a requester (one salted index). Bins hold it as an unsigned number.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub(crate) struct RequesterId(pub u64);

/// The number of an extraction batch, from 1: the order of an object's bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct BatchNumber(pub i64);

/// The number of a labelling round (one call that gave labels), from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct LabelRound(pub i64);

impl ToSql for ObjectId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl FromSql for ObjectId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        i64::column_result(value).map(ObjectId)
    }
}

impl ToSql for RequesterId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        // ids come from SQLite's rowid, which is never negative
        Ok(ToSqlOutput::from(self.0.cast_signed()))
    }
}

impl FromSql for RequesterId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        i64::column_result(value).map(|id| RequesterId(id.cast_unsigned()))
    }
}

impl ToSql for BatchNumber {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl ToSql for LabelRound {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl ToSql for LogIdentity {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.as_str()))
    }
}

impl FromSql for LogIdentity {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        String::column_result(value).map(LogIdentity)
    }
}
