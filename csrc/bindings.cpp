// pybind11 adapter for the top-k kernel: checks shapes and dtypes, hands raw pointers to
// the engine without copying, and releases the GIL only around pure C++ work. One
// register_<concept> per concept. Messages meant for users live in cliprt.runtime.index;
// these checks guard the memory the kernel will read.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "threads.hpp"
#include "topk.hpp"

namespace py = pybind11;

namespace {

bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

void take_gil_back(PyThreadState* state) {
  // A daemon thread returning while the interpreter finalizes would be ended by CPython
  // (before 3.14) with pthread_exit, whose unwinding aborts the process (std::terminate)
  // at the first noexcept destructor. Park it instead, as CPython 3.14 does; the process
  // is exiting.
  while (interpreter_finalizing()) std::this_thread::sleep_for(std::chrono::seconds(1));
  PyEval_RestoreThread(state);
}

// f() with the GIL released. Not py::gil_scoped_release: its destructor is noexcept (see
// take_gil_back).
template <class F>
auto without_gil(F&& f) {
  PyThreadState* state = PyEval_SaveThread();
  try {
    auto out = f();
    take_gil_back(state);
    return out;
  } catch (...) {
    take_gil_back(state);
    throw;
  }
}

// Elements between row starts; rows must be contiguous, the stride may be larger.
int64_t row_stride_elems(const py::array& a, const char* name) {
  if (a.ndim() != 2)
    throw py::value_error(std::string(name) + " must be 2-D, got " + std::to_string(a.ndim()) + "-D");
  const auto item = static_cast<py::ssize_t>(a.itemsize());
  if (a.shape(0) == 0) return a.shape(1);  // no rows to read (numpy may give 0 strides)
  if (a.shape(1) > 1 && a.strides(1) != item)
    throw py::value_error(std::string(name) + " rows must be contiguous (stride of axis 1 == itemsize); use np.ascontiguousarray");
  if (a.shape(0) > 1 && (a.strides(0) < 0 || a.strides(0) % item != 0))
    throw py::value_error(std::string(name) + " row stride must be a non-negative multiple of the item size");
  return a.shape(0) > 1 ? a.strides(0) / item : a.shape(1);
}

cliprt::DType dtype_of(const py::array& a) {
  const py::dtype dt = a.dtype();
  if (dt.is(py::dtype::of<float>())) return cliprt::DType::fp32;
  if (dt.kind() == 'f' && dt.itemsize() == 2) return cliprt::DType::fp16;
  if (dt.is(py::dtype::of<uint16_t>())) return cliprt::DType::fp16;  // raw half bits
  if (dt.is(py::dtype::of<int8_t>())) return cliprt::DType::int8;
  throw py::value_error("database dtype " + std::string(py::str(dt)) +
                        " is not supported; use float32, float16 or int8 (with scales)");
}

template <class T>
const T* vector_of(const py::object& obj, int64_t n, const char* name) {
  if (obj.is_none()) return nullptr;
  if (!py::isinstance<py::array_t<T, 0>>(obj))
    throw py::value_error(std::string(name) + " must be a numpy array of " + py::str(py::dtype::of<T>()).cast<std::string>());
  auto arr = obj.cast<py::array_t<T, 0>>();
  if (arr.ndim() != 1 || arr.shape(0) != n || (n > 1 && arr.strides(0) != static_cast<py::ssize_t>(sizeof(T))))
    throw py::value_error(std::string(name) + " must be a contiguous 1-D array with one entry per row");
  return arr.data();
}

py::tuple search(const py::array& database, const py::array& queries, int64_t k, int64_t threads,
                 const py::object& scales, const py::object& ids, int64_t min_rows_per_thread) {
  cliprt::Database db;
  db.dtype = dtype_of(database);
  db.row_stride = row_stride_elems(database, "database");
  db.n = database.shape(0);
  db.d = database.shape(1);
  db.rows = database.data();
  if (!queries.dtype().is(py::dtype::of<float>())) throw py::value_error("queries must be float32");
  cliprt::Queries qs;
  qs.stride = row_stride_elems(queries, "queries");
  qs.nq = queries.shape(0);
  qs.data = static_cast<const float*>(queries.data());
  if (queries.shape(1) != db.d)
    throw py::value_error("queries have dim " + std::to_string(queries.shape(1)) + ", database has " + std::to_string(db.d));
  if (k < 0) throw py::value_error("k must be >= 0, got " + std::to_string(k));
  // Before numpy allocates nq x k results: a product that overflows is a clear error.
  if (qs.nq > 0 && k > (int64_t{1} << 58) / qs.nq)
    throw py::value_error("k x queries = " + std::to_string(k) + " x " + std::to_string(qs.nq) +
                          " results is too many; ask for a smaller k.");
  db.scales = vector_of<float>(scales, db.n, "scales");
  if ((db.dtype == cliprt::DType::int8) != (db.scales != nullptr))
    throw py::value_error("scales are required for int8 rows and only for them");
  db.ids = vector_of<int64_t>(ids, db.n, "ids");

  py::array_t<float> out_scores({qs.nq, static_cast<py::ssize_t>(k)});
  py::array_t<int64_t> out_ids({qs.nq, static_cast<py::ssize_t>(k)});
  float* sp = out_scores.mutable_data();
  int64_t* ip = out_ids.mutable_data();
  without_gil([&] {
    cliprt::search(db, qs, k, threads, sp, ip, min_rows_per_thread);
    return 0;
  });
  return py::make_tuple(out_scores, out_ids);
}

uint64_t stream_read(const py::array& database, int64_t threads) {
  const int64_t stride = row_stride_elems(database, "database");
  const auto item = static_cast<int64_t>(database.itemsize());
  const void* p = database.data();
  const int64_t n = database.shape(0), row_bytes = database.shape(1) * item;
  return without_gil([&] { return cliprt::stream_read(p, n, row_bytes, stride * item, threads); });
}

void register_search(py::module_& m) {
  m.def("search", &search, py::arg("database"), py::arg("queries"), py::kw_only(), py::arg("k"),
        py::arg("threads") = 0, py::arg("scales") = py::none(), py::arg("ids") = py::none(),
        py::arg("min_rows_per_thread") = 0,
        "Exact top-k by inner product. database: float32, float16 (or uint16 half bits) or "
        "int8 rows (n, d), rows contiguous, any row stride; int8 needs scales float32 (n,). "
        "queries: float32 (nq, d). ids: optional int64 (n,) returned instead of positions "
        "(and used for the lower-id-first tie rule). nq, n and k may be 0. threads <= 0: one "
        "per usable CPU; the rows split into at most `threads` parts (at most 256, fewer when "
        "a part would get under min_rows_per_thread rows; 0: automatic, tests force splitting "
        "with 1), run on at most one thread per usable CPU. "
        "Returns (scores float32 (nq, k), ids int64 (nq, k)); missing hits: -inf, -1.");
}

void register_isa(py::module_& m) {
  m.def("available_isas", &cliprt::available_isas,
        "SIMD instruction sets this CPU can run, worst first.");
  m.def("current_isa", &cliprt::current_isa, "The instruction set searches use now.");
  m.def("set_isa", &cliprt::set_isa, py::arg("name"),
        "Forces an instruction set (tests, benchmarks); ValueError if unsupported. "
        "Not to be called while a search runs in another thread.");
}

void register_stream(py::module_& m) {
  m.def("stream_read", &stream_read, py::arg("database"), py::kw_only(), py::arg("threads") = 0,
        "Reads every byte of a 2-D array once with `threads` threads (the memory-read floor "
        "of a scan) and returns an XOR fold of its bytes (changes with any one byte).");
}

void register_pool(py::module_& m) {
  m.def("pool_workers", &cliprt::pool_workers,
        "Worker threads the kernel's pool has started (they sleep between searches).");
  // Keeps the GIL: workers never take it, and at exit this thread must not park.
  m.def("shutdown_pool", &cliprt::shutdown_pool,
      "Joins the pool's workers; later searches run on the calling thread. Registered "
      "with atexit, so no worker outlives the interpreter.");
  // atexit runs before the interpreter finalizes, while a worker may still be parked.
  py::module_::import("atexit").attr("register")(m.attr("shutdown_pool"));
}

}  // namespace

PYBIND11_MODULE(_topk, m) {
  m.doc() = "cliprt's private top-k kernel; use cliprt.Index instead.";
  m.attr("__version__") = CLIPRT_VERSION;
  register_search(m);
  register_isa(m);
  register_stream(m);
  register_pool(m);
  // Resolve CLIPRT_ISA now: an unsupported value fails the import with a clear message
  // rather than the first search.
  cliprt::current_isa();
}
