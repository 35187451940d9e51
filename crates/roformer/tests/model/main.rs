//! The `roformer` crate's tests, in one test target (one build and link for all; each test
//! file of its own would instantiate the model on ndarray again): properties of the
//! encoder, parity with HF transformers, each CPU kernel against plain loops, the fused
//! kernels against the references on a whole model, and the references' backward steps
//! against burn's autodiff.

mod encoder_properties;
mod fused_kernels;
mod hf_parity;
mod kernels_against_loops;
mod ndarray_generator;
mod reference_backwards;
