//! The job sandbox: runs WebAssembly jobs deterministically, with fuel billing, and
//! gives them metered access to the GPU through the `sietch_gpu` host module.
