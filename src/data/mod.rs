//! Data sets for language modelling: corpora, vocabularies and the batching
//! of token streams for truncated backpropagation through time.

pub mod text;
