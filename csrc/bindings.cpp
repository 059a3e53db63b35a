// pybind11 adapter for the top-k kernel: validates shapes, hands raw pointers to the
// kernel and releases the GIL only around pure C++ work. Argument checks that need a
// user-facing message live in the Python wrapper (cliprt.runtime.index).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <thread>

#include "topk.hpp"

namespace py = pybind11;

namespace {


int64_t row_stride_elems(const py::array& a, const char* name) {
  if (a.ndim() != 2) throw py::value_error(std::string(name) + " must be 2-D");
  if (a.strides(1) != static_cast<py::ssize_t>(a.itemsize()))
    throw py::value_error(std::string(name) + " rows must be contiguous (stride of axis 1 == itemsize)");
  if (a.strides(0) % a.itemsize() != 0)
    throw py::value_error(std::string(name) + " row stride must be a multiple of the item size");
  return a.strides(0) / static_cast<int64_t>(a.itemsize());
}

py::tuple topk_fp32(py::array_t<float, 0> db, py::array_t<float, 0> queries, int64_t k,
                    int threads) {
  const int64_t db_stride = row_stride_elems(db, "database");
  const int64_t q_stride = row_stride_elems(queries, "queries");
  const int64_t n = db.shape(0), d = db.shape(1), nq = queries.shape(0);
  if (queries.shape(1) != d) throw py::value_error("queries and database differ in dim");
  if (k <= 0) throw py::value_error("k must be >= 1");
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  py::array_t<float> scores({nq, k});
  py::array_t<int64_t> ids({nq, k});
  const float* dbp = db.data();
  const float* qp = queries.data();
  float* sp = scores.mutable_data();
  int64_t* ip = ids.mutable_data();
  {
    py::gil_scoped_release release;
    cliprt::topk_fp32(dbp, n, d, db_stride, qp, nq, q_stride, k, threads, sp, ip);
  }
  return py::make_tuple(scores, ids);
}

void register_topk(py::module_& m) {
  m.def("topk_fp32", &topk_fp32, py::arg("database"), py::arg("queries"), py::kw_only(),
        py::arg("k"), py::arg("threads") = 0,
        "Exact top-k by inner product over fp32 rows. Returns (scores[nq,k], ids[nq,k]).");
}

}  // namespace

PYBIND11_MODULE(_topk, m) {
  m.doc() = "cliprt's private top-k kernel; use cliprt.Index instead.";
  m.attr("__version__") = CLIPRT_VERSION;
  register_topk(m);
}
