//! placeholder until the lifecycle lands in this commit series
