//! Campaign detection across accounts (being written).
