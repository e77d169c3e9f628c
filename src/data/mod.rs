//! Real data sets: text corpora for language modelling (vocabularies and
//! the batching of token streams for truncated BPTT) and MNIST.

pub mod mnist;
pub mod text;
pub mod ett;
