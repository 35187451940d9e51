//! The same weights on another backend, for tests that run one model through several
//! backends (or precisions) and compare what they compute.

use burn::module::{Module, ModuleMapper, Param};
use burn::record::{BinBytesRecorder, DoublePrecisionSettings, Recorder};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Element, Tensor};

/// `into` with the weights of `from` (the same module type on backend `F`), through a
/// double-precision record, each parameter then cast to `T`'s float type and made a
/// gradient leaf. `from`'s parameters must hold values already: burn draws a parameter's
/// initial values when it is first used, separately in each clone.
pub fn copy_weights<F, T, MF, MT>(from: &MF, into: MT, device: &T::Device) -> MT
where
    F: Backend,
    T: Backend,
    MF: Module<F>,
    MT: Module<T>,
{
    let recorder = BinBytesRecorder::<DoublePrecisionSettings>::default();
    let bytes = Recorder::<F>::record(&recorder, from.clone().into_record(), ())
        .expect("a module's record serialises");
    let record: MT::Record = Recorder::<T>::load(&recorder, bytes, device)
        .expect("the record of the same module type loads");
    into.load_record(record)
        .map(&mut CastTo(<T::FloatElem as Element>::dtype()))
}

/// Casts every parameter to a float type (a record loads in the file's precision, whatever
/// the backend's element type), keeping each a gradient leaf.
pub struct CastTo(pub DType);

impl<B: Backend> ModuleMapper<B> for CastTo {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let tensor = tensor.cast(self.0).detach().require_grad();
        Param::from_mapped_value(id, tensor, mapper)
    }
}
