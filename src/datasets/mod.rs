//! What an archive knows and the logs do not: which dataset and asset each object key belongs to
//! ([`map`], built for DANDI-style archives by [`dandi`]), and each asset's type ([`asset_types`]).

pub(crate) mod asset_types;
pub(crate) mod dandi;
pub(crate) mod map;
