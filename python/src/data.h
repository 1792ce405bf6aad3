#pragma once
// The parts of xpscale._native, each adding its functions to the module.
#include <pybind11/pybind11.h>

namespace xpscale::python {

// xpscale.data's native part: _Dataset, open_dataset, _Loader (data.cpp).
void bind_data(pybind11::module_& m);

}  // namespace xpscale::python
