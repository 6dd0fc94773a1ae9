//! Thin PyO3 (0.17) binding of peromesh-core as the private module `_peromesh_native`.
//!
//! Plain data crosses the boundary: NumPy arrays (read and written through the
//! buffer protocol) and lists of tuples. Every call that does real work releases
//! the GIL. Typed by ../_peromesh_native.pyi; used via `server.native`.

use std::sync::Arc;

use peromesh_core as core;
use pyo3::buffer::{Element, PyBuffer};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn value_error(e: core::Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn read<T: Element + Copy>(py: Python<'_>, obj: &PyAny) -> PyResult<Vec<T>> {
    PyBuffer::<T>::get(obj)?.to_vec(py)
}

fn write<T: Element + Copy>(py: Python<'_>, obj: &PyAny, data: &[T]) -> PyResult<()> {
    PyBuffer::<T>::get(obj)?.copy_from_slice(py, data)
}

/// Immutable CSR relation graph (see server.native.graph).
#[pyclass(name = "Graph", module = "_peromesh_native")]
struct PyGraph {
    inner: Arc<core::Graph>,
}

#[pymethods]
impl PyGraph {
    #[staticmethod]
    fn from_edges(
        py: Python<'_>,
        src: &PyAny,
        dst: &PyAny,
        weight: &PyAny,
        num_nodes: i64,
        directed: bool,
    ) -> PyResult<PyGraph> {
        let (s, d, w) = (
            read::<i64>(py, src)?,
            read::<i64>(py, dst)?,
            read::<f64>(py, weight)?,
        );
        let graph = py
            .allow_threads(|| core::Graph::from_edges(&s, &d, &w, num_nodes, directed))
            .map_err(value_error)?;
        Ok(PyGraph {
            inner: Arc::new(graph),
        })
    }

    fn with_updates(
        &self,
        py: Python<'_>,
        src: &PyAny,
        dst: &PyAny,
        weight: &PyAny,
        num_nodes: i64,
    ) -> PyResult<PyGraph> {
        let (s, d, w) = (
            read::<i64>(py, src)?,
            read::<i64>(py, dst)?,
            read::<f64>(py, weight)?,
        );
        let inner = Arc::clone(&self.inner);
        let graph = py
            .allow_threads(move || inner.with_updates(&s, &d, &w, num_nodes))
            .map_err(value_error)?;
        Ok(PyGraph {
            inner: Arc::new(graph),
        })
    }

    #[getter]
    fn num_nodes(&self) -> usize {
        self.inner.num_nodes()
    }

    #[getter]
    fn num_arcs(&self) -> usize {
        self.inner.num_arcs()
    }

    #[getter]
    fn directed(&self) -> bool {
        self.inner.directed()
    }

    fn arcs_into(&self, py: Python<'_>, src: &PyAny, dst: &PyAny, weight: &PyAny) -> PyResult<()> {
        let m = self.inner.num_arcs();
        let (mut s, mut d, mut w) = (vec![0i64; m], vec![0i64; m], vec![0f64; m]);
        let inner = Arc::clone(&self.inner);
        py.allow_threads(|| inner.arcs_into(&mut s, &mut d, &mut w))
            .map_err(value_error)?;
        write(py, src, &s)?;
        write(py, dst, &d)?;
        write(py, weight, &w)
    }

    fn neighbors_of(&self, node: i64) -> PyResult<Vec<(u32, f64)>> {
        let arcs = self.inner.neighbors(node).map_err(value_error)?;
        Ok(arcs.iter().map(|a| (a.node, a.weight as f64)).collect())
    }

    fn __repr__(&self) -> String {
        format!(
            "_peromesh_native.Graph({} nodes, {} arcs, directed={})",
            self.inner.num_nodes(),
            self.inner.num_arcs(),
            self.inner.directed()
        )
    }
}

/// Spreading activation; semantics in server.native.graph. Releases the GIL.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn spread(
    py: Python<'_>,
    graph: &PyGraph,
    seeds: Vec<(i64, f64)>,
    steps: i64,
    decay: f64,
    threshold: f64,
    max_active_per_step: Option<i64>,
    max_fanout_per_node: Option<i64>,
    energy_cap: Option<f64>,
    top_k: i64,
    include_seeds: bool,
) -> PyResult<Vec<(u64, f64)>> {
    let params = core::SpreadParams {
        steps,
        decay,
        threshold,
        max_active_per_step,
        max_fanout_per_node,
        energy_cap,
        top_k,
        include_seeds,
    };
    let inner = Arc::clone(&graph.inner);
    py.allow_threads(move || inner.spread(&seeds, &params))
        .map_err(value_error)
}

/// Text cleaner; semantics in server.native.text. Releases the GIL.
#[pyclass(name = "TextCleaner", module = "_peromesh_native")]
struct PyTextCleaner {
    inner: Arc<core::TextCleaner>,
}

#[pymethods]
impl PyTextCleaner {
    #[new]
    fn new(
        sensitive_words: Vec<String>,
        mask: String,
        min_base64_len: i64,
        keep_newlines: bool,
    ) -> PyResult<Self> {
        let inner = core::TextCleaner::new(&sensitive_words, &mask, min_base64_len, keep_newlines)
            .map_err(value_error)?;
        Ok(PyTextCleaner {
            inner: Arc::new(inner),
        })
    }

    fn clean(&self, py: Python<'_>, text: &str) -> String {
        let inner = Arc::clone(&self.inner);
        py.allow_threads(move || inner.clean(text))
    }
}

#[pymodule]
fn _peromesh_native(_py: Python<'_>, m: &PyModule) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<PyGraph>()?;
    m.add_class::<PyTextCleaner>()?;
    m.add_function(wrap_pyfunction!(spread, m)?)?;
    Ok(())
}
