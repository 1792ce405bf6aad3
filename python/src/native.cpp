// xpscale._native: the C++ side of the Python package. It binds the same
// code the C++ API runs (the trial's checkpoint marker, the error family),
// so a Python trial and a C++ one agree byte for byte; the Python modules
// (python/xpscale/*.py) add only what is Python's own (argv, kwargs).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

#include "data.h"
#include "xpscale/coordinator/checkpoint_dir.h"
#include "xpscale/core/error.h"
#include "xpscale/sharding/error.h"

namespace py = pybind11;

PYBIND11_MODULE(_native, m) {
  m.doc() = "xpscale's native part (C++, linked against libxpscale); use the xpscale package";
  m.attr("__version__") = XPSCALE_VERSION;

  // One Python exception per category that a caller may want to tell apart;
  // the message is the C++ one (it names the file, URL or key at fault).
  static py::exception<xpscale::Error> error(m, "Error", PyExc_RuntimeError);
  static py::exception<xpscale::UserError> user_error(m, "UserError", PyExc_ValueError);
  // Data that cannot be read (a missing URL, a shard that is not a tar, a
  // truncated one): an OSError too, as Python's own I/O errors are.
  static py::handle data_error = PyErr_NewExceptionWithDoc(
      "xpscale._native.DataError",
      "Data that cannot be read: a missing or unreachable URL, a shard that is not a tar,\n"
      "a truncated or corrupt one, a loader state of another dataset. The message names\n"
      "the URL, the entry and the byte offset.",
      py::make_tuple(error, py::handle(PyExc_OSError)).release().ptr(), nullptr);
  if (!data_error) throw py::error_already_set();
  m.attr("DataError") = data_error;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const xpscale::ShardingError& e) {
      PyErr_SetString(data_error.ptr(), e.what());
    } catch (const xpscale::UserError& e) {
      user_error(e.what());
    } catch (const xpscale::Error& e) {
      error(e.what());
    }
  });

  m.def(
      "read_checkpoint_step",
      [](const std::string& checkpoint_dir) { return xpscale::read_checkpoint_step(checkpoint_dir); },
      py::arg("checkpoint_dir"), py::call_guard<py::gil_scoped_release>(),
      "The step recorded by the last checkpoint_saved() in checkpoint_dir, or -1 when there is\n"
      "none. Raises xpscale.Error (RuntimeError) for a marker that is not {\"step\": <integer>}.");
  m.def(
      "write_checkpoint_step",
      [](const std::string& checkpoint_dir, std::int64_t step) {
        xpscale::write_checkpoint_step(checkpoint_dir, step);
      },
      py::arg("checkpoint_dir"), py::arg("step"), py::call_guard<py::gil_scoped_release>(),
      "Marks checkpoint_dir as holding a complete checkpoint of step (the file\n"
      "xpscale_checkpoint.json: a temporary file, fsync, rename, fsync of the directory).\n"
      "Raises xpscale.Error naming the path when it cannot be written.");
  m.def("trial_dir_of", [](const std::string& out_dir, std::uint64_t trial) {
    return xpscale::trial_dir_of(out_dir, trial).string();
  }, py::arg("out_dir"), py::arg("trial"), "out_dir/trials/<trial>: a trial's own directory.");
  m.def("checkpoint_dir_of", [](const std::string& out_dir, std::uint64_t trial) {
    return xpscale::checkpoint_dir_of(out_dir, trial).string();
  }, py::arg("out_dir"), py::arg("trial"), "out_dir/trials/<trial>/checkpoint.");

  xpscale::python::bind_data(m);
}
