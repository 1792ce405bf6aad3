// xpscale._native's data part: the C++ sharded loader (sharding/loader.h)
// bound for xpscale.data.ShardedDataset. Python gets the loader's samples
// as dicts of bytes; everything about order, partitioning, resume, retries
// and caching is the C++ loader's, so a Python rank and a C++ rank read the
// same sequence.
//
// The GIL is released while the loader waits for bytes and parses tar;
// Python objects are made afterwards, many samples per call (take(n)), so
// that the per-sample cost is the objects and not the call.
#include "data.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <charconv>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "xpscale/sharding/dataset.h"
#include "xpscale/sharding/error.h"
#include "xpscale/sharding/loader.h"
#include "xpscale/sharding/shard_index.h"

namespace py = pybind11;

namespace xpscale::python {

namespace {

// New references, or an error_already_set.
py::object steal(PyObject* o) {
  if (o == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(o);
}

py::bytes to_bytes(std::string_view v) { return py::bytes(v.data(), v.size()); }

// A str that Python keeps once (dict keys that every sample repeats).
py::object interned(std::string_view text) {
  PyObject* s = PyUnicode_FromStringAndSize(text.data(), static_cast<Py_ssize_t>(text.size()));
  if (s == nullptr) throw py::error_already_set();
  PyUnicode_InternInPlace(&s);
  return steal(s);
}

constexpr std::size_t kTakeBytes = std::size_t{1} << 20;
// Fields this large reach Python without a copy, as a Buffer over the
// loader's read buffer; smaller ones as bytes (a copy costs less than the
// object that avoids it).
constexpr std::size_t kZeroCopyBytes = std::size_t{64} << 10;

// A field's bytes inside the loader's read buffer, kept alive by `storage`:
// Python's buffer protocol (np.frombuffer, io.BytesIO, memoryview, PIL)
// reads them in place; pickling (DataLoader workers) makes it bytes.
struct FieldBuffer {
  std::shared_ptr<const void> storage;
  const char* data = nullptr;
  std::size_t size = 0;
};

// A loader of one rank (or one worker of a rank) that makes Python samples.
class PyLoader {
 public:
  // Without the GIL: the loader's threads may be inside a read (a retry's
  // backoff), and other Python threads should run while they finish.
  ~PyLoader() {
    py::gil_scoped_release release;
    loader_.reset();
  }
  PyLoader(const PyLoader&) = delete;
  PyLoader& operator=(const PyLoader&) = delete;

  PyLoader(const Dataset& dataset, LoaderOptions options, int rank, int world_size,
           py::object sample_type)
      : sample_type_(std::move(sample_type)) {
    if (!PyType_Check(sample_type_.ptr()) ||
        !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(sample_type_.ptr()), &PyDict_Type))
      throw py::type_error("sample_type must be a subclass of dict");
    {
      py::gil_scoped_release release;
      loader_.emplace(dataset, std::move(options), GroupView{rank, world_size, {}});
    }
    for (const DatasetShard& shard : loader_->dataset().shards)
      urls_.push_back(py::str(shard.object.url));
    key_ = interned("__key__");
    url_ = interned("__url__");
    offset_ = interned("__offset__");
  }

  // Up to n samples (fewer past max_bytes), read without the GIL. An error
  // after some samples were read is kept for the next call, so that those
  // samples are not lost; the end of the epoch sets ended_.
  std::vector<Sample> collect(std::size_t n, std::size_t max_bytes) {
    if (pending_) {
      std::exception_ptr e = pending_;
      pending_ = nullptr;
      std::rethrow_exception(e);
    }
    std::vector<Sample> got;
    if (ended_) return got;
    got.reserve(n);
    py::gil_scoped_release release;
    try {
      std::size_t bytes = 0;
      while (got.size() < n && bytes < max_bytes) {
        std::optional<Sample> s = loader_->next();
        if (!s) {
          ended_ = true;  // the loader stands at the next epoch; this one is done
          break;
        }
        bytes += s->size();
        got.push_back(std::move(*s));
      }
    } catch (...) {
      if (got.empty()) throw;
      pending_ = std::current_exception();
    }
    return got;
  }

  // Up to n samples of the epoch; an empty list once the epoch is over (the
  // loader then stands at the next one, which this object does not read).
  // At most ~1 MiB per call: Python's bytes come from fresh pages while
  // many are alive at once (a page fault per 4 KiB, which cost 6x the copy
  // here), and from reused memory otherwise; Buffers pin read buffers.
  py::list take(std::size_t n) {
    const std::vector<Sample> got = collect(n, kTakeBytes);
    py::list out(got.size());
    auto* type = reinterpret_cast<PyTypeObject*>(sample_type_.ptr());
    const py::tuple no_args;
    for (std::size_t i = 0; i < got.size(); ++i) {
      const Sample& s = got[i];
      // dict's tp_new: the subclass's instance without a Python-level call.
      py::object d = steal(type->tp_new(type, no_args.ptr(), nullptr));
      set(d, key_,
          steal(PyUnicode_FromStringAndSize(s.key.data(), static_cast<Py_ssize_t>(s.key.size()))));
      set(d, url_, urls_[s.shard]);
      set(d, offset_,
          steal(PyLong_FromUnsignedLongLong(
              loader_->dataset().shards[s.shard].index.begin(s.index))));
      for (const Sample::Field& f : s.fields) {
        if (f.data.size() >= kZeroCopyBytes && s.storage) {
          set(d, ext_name(f.ext), py::cast(FieldBuffer{s.storage, f.data.data(), f.data.size()}));
          continue;
        }
        set(d, ext_name(f.ext),
            steal(
                PyBytes_FromStringAndSize(f.data.data(), static_cast<Py_ssize_t>(f.data.size()))));
      }
      PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), d.release().ptr());
    }
    return out;
  }

  // The rest of the epoch read in C++ alone, no Python object per sample:
  // the keys (when asked) and the loader's stats. Tests compare the Python
  // path with it; bench/pyloader times it as the C++ loader's figure.
  py::tuple drain(bool keys) {
    if (ended_) return py::make_tuple(py::list(), stats());
    std::vector<std::string> seen;
    {
      py::gil_scoped_release release;
      while (std::optional<Sample> s = loader_->next())
        if (keys) seen.push_back(s->key);
      ended_ = true;
    }
    return py::make_tuple(py::cast(seen), stats());
  }

  // Up to n samples as one batch of arrays, for fixed-size fields: specs
  // maps an extension to ("raw", bytes per sample) -> uint8 array n x bytes,
  // or ("int", 0) -> int64 array of n parsed from the field's text. Copies
  // and parsing run without the GIL. None once the epoch is over.
  py::object take_batch(
      std::size_t n,
      const std::vector<std::pair<std::string, std::pair<std::string, std::size_t>>>& specs) {
    const std::vector<Sample> got = collect(n, SIZE_MAX);
    if (got.empty()) return py::none();
    const auto rows = static_cast<py::ssize_t>(got.size());
    py::dict out;
    py::list keys(got.size());
    for (std::size_t i = 0; i < got.size(); ++i)
      PyList_SET_ITEM(keys.ptr(), static_cast<Py_ssize_t>(i),
                      steal(PyUnicode_FromStringAndSize(got[i].key.data(),
                                                        static_cast<Py_ssize_t>(got[i].key.size())))
                          .release()
                          .ptr());
    out[key_] = keys;
    struct Target {
      const std::string* ext;
      bool text_int;
      std::size_t width;
      char* data;
    };
    std::vector<Target> targets;
    for (const auto& [ext, spec] : specs) {
      if (spec.first == "int") {
        py::array_t<std::int64_t> a(rows);
        targets.push_back({&ext, true, 8, reinterpret_cast<char*>(a.mutable_data())});
        out[py::str(ext)] = a;
      } else {
        py::array_t<std::uint8_t> a({rows, static_cast<py::ssize_t>(spec.second)});
        targets.push_back({&ext, false, spec.second, reinterpret_cast<char*>(a.mutable_data())});
        out[py::str(ext)] = a;
      }
    }
    std::string problem;
    {
      py::gil_scoped_release release;
      for (std::size_t i = 0; i < got.size() && problem.empty(); ++i) {
        const Sample& s = got[i];
        for (const Target& t : targets) {
          if (!s.has_field(*t.ext)) {
            problem = describe(s) + " has no field '" + *t.ext + "'";
            break;
          }
          const std::string_view v = s.field(*t.ext);
          if (t.text_int) {
            std::int64_t value = 0;
            const char* end = v.data() + v.size();
            auto [ptr, ec] = std::from_chars(v.data(), end, value);
            while (ptr != end && (*ptr == '\n' || *ptr == ' ' || *ptr == '\r')) ++ptr;
            if (ec != std::errc() || ptr != end) {
              problem = describe(s) + ": field '" + *t.ext + "' is not an integer";
              break;
            }
            std::memcpy(t.data + i * 8, &value, 8);
          } else {
            if (v.size() != t.width) {
              problem = describe(s) + ": field '" + *t.ext + "' holds " + std::to_string(v.size()) +
                        " bytes, the batch's arrays take " + std::to_string(t.width);
              break;
            }
            std::memcpy(t.data + i * t.width, v.data(), v.size());
          }
        }
      }
    }
    if (!problem.empty()) throw ShardingError(problem);
    return out;
  }

  std::string state() const { return loader_->state().to_json(); }
  void restore(const std::string& json) { loader_->restore(LoaderState::from_json(json)); }
  std::uint64_t samples_per_epoch() const { return loader_->samples_per_epoch(); }
  std::uint64_t remaining() const { return loader_->remaining(); }

  py::dict stats() const {
    const LoaderStats s = loader_->stats();
    py::dict d;
    d["bytes"] = s.bytes;
    d["samples"] = s.samples;
    d["repeats"] = s.repeats;
    d["skipped"] = s.skipped;
    d["wait_s"] = s.wait_s;
    d["elapsed_s"] = s.elapsed_s;
    d["stall_fraction"] = s.stall_fraction();
    d["max_bytes_in_flight"] = s.max_bytes_in_flight;
    return d;
  }

 private:
  std::string describe(const Sample& s) const {
    const DatasetShard& shard = loader_->dataset().shards[s.shard];
    return shard.object.url + ": sample '" + s.key + "' (byte offset " +
           std::to_string(shard.index.begin(s.index)) + ")";
  }

  static void set(const py::object& d, const py::object& key, const py::object& value) {
    if (PyDict_SetItem(d.ptr(), key.ptr(), value.ptr()) != 0) throw py::error_already_set();
  }

  // Field names repeat from sample to sample: one interned str each.
  const py::object& ext_name(std::string_view ext) {
    auto it = exts_.find(std::string(ext));
    if (it != exts_.end()) return it->second;
    return exts_.emplace(std::string(ext), interned(ext)).first->second;
  }

  py::object sample_type_;
  std::optional<ShardedLoader> loader_;
  std::vector<py::object> urls_;
  py::object key_, url_, offset_;
  std::unordered_map<std::string, py::object> exts_;
  std::exception_ptr pending_;
  bool ended_ = false;
};

// A Dataset travels to DataLoader workers (spawn) as its index bytes, so
// that a worker does not stat and index every shard again.
py::tuple dataset_state(const Dataset& d) {
  py::list shards;
  for (const DatasetShard& s : d.shards)
    shards.append(py::make_tuple(s.object.url, s.object.size, s.object.etag, s.sha256,
                                 to_bytes(encode_index(s.index)), s.scanned));
  return py::make_tuple(1, d.digest, d.samples, shards);
}

Dataset dataset_from_state(const py::tuple& t) {
  if (t.size() != 4 || t[0].cast<int>() != 1)
    throw py::value_error("not the pickled state of an xpscale dataset");
  Dataset d;
  d.digest = t[1].cast<std::string>();
  d.samples = t[2].cast<std::uint64_t>();
  for (const py::handle h : t[3].cast<py::list>()) {
    const auto s = h.cast<py::tuple>();
    DatasetShard shard;
    shard.object.url = s[0].cast<std::string>();
    shard.object.size = s[1].cast<std::uint64_t>();
    shard.object.etag = s[2].cast<std::string>();
    shard.sha256 = s[3].cast<std::string>();
    shard.index = decode_index(s[4].cast<std::string>(), index_url_for(shard.object.url));
    shard.scanned = s[5].cast<bool>();
    d.shards.push_back(std::move(shard));
  }
  return d;
}

}  // namespace

void bind_data(py::module_& m) {
  py::class_<FieldBuffer>(m, "Buffer", py::buffer_protocol(),
                          "A sample's field of 64 KiB or more, read in place (no copy): use it\n"
                          "where bytes-like objects go (np.frombuffer, io.BytesIO, memoryview,\n"
                          "PIL), or bytes(field). It pickles as bytes.")
      .def_buffer([](FieldBuffer& b) {
        return py::buffer_info(const_cast<char*>(b.data), 1,
                               py::format_descriptor<std::uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(b.size)}, {1}, /*readonly=*/true);
      })
      .def("__len__", [](const FieldBuffer& b) { return b.size; })
      .def("__bytes__", [](const FieldBuffer& b) { return py::bytes(b.data, b.size); })
      .def("tobytes", [](const FieldBuffer& b) { return py::bytes(b.data, b.size); })
      .def(
          "decode",
          [](const FieldBuffer& b, const char* encoding) {
            return py::bytes(b.data, b.size).attr("decode")(encoding);
          },
          py::arg("encoding") = "utf-8")
      .def("__eq__",
           [](const FieldBuffer& b, py::object other) {
             py::buffer_info o;
             try {
               o = py::buffer(other).request();
             } catch (const py::error_already_set&) {
               return false;
             } catch (const std::exception&) {
               return false;
             }
             return static_cast<std::size_t>(o.size * o.itemsize) == b.size &&
                    std::memcmp(o.ptr, b.data, b.size) == 0;
           })
      .def("__reduce__",
           [](const FieldBuffer& b) {
             return py::make_tuple(py::module_::import("builtins").attr("bytes"),
                                   py::make_tuple(py::bytes(b.data, b.size)));
           })
      .def("__repr__", [](const FieldBuffer& b) {
        return "<xpscale.data.Buffer of " + std::to_string(b.size) + " bytes>";
      });

  py::class_<Dataset>(m, "_Dataset",
                      "The shards of a dataset with their indexes (see xpscale.data).")
      .def_property_readonly("samples", [](const Dataset& d) { return d.samples; })
      .def_property_readonly("digest", [](const Dataset& d) { return d.digest; })
      .def_property_readonly("bytes",
                             [](const Dataset& d) {
                               std::uint64_t n = 0;
                               for (const DatasetShard& s : d.shards) n += s.object.size;
                               return n;
                             })
      .def_property_readonly("scanned_bytes",
                             [](const Dataset& d) {
                               std::uint64_t n = 0;
                               for (const DatasetShard& s : d.shards)
                                 if (s.scanned) n += s.object.size;
                               return n;
                             })
      .def_property_readonly("urls",
                             [](const Dataset& d) {
                               std::vector<std::string> urls;
                               for (const DatasetShard& s : d.shards) urls.push_back(s.object.url);
                               return urls;
                             })
      .def_property_readonly("scanned",
                             [](const Dataset& d) {
                               std::vector<std::string> urls;
                               for (const DatasetShard& s : d.shards)
                                 if (s.scanned) urls.push_back(s.object.url);
                               return urls;
                             })
      .def(py::pickle([](const Dataset& d) { return dataset_state(d); },
                      [](const py::tuple& t) { return dataset_from_state(t); }));

  m.def(
      "open_dataset",
      [](std::vector<std::string> urls, std::string pattern, std::string manifest,
         std::string prefix) {
        DatasetLocation where{std::move(manifest), std::move(urls), std::move(pattern),
                              std::move(prefix)};
        py::gil_scoped_release release;
        return open_dataset(where);
      },
      py::kw_only(), py::arg("urls") = std::vector<std::string>{}, py::arg("pattern") = "",
      py::arg("manifest") = "", py::arg("prefix") = "",
      "Stats every shard and loads (or builds by a scan) its index. Exactly one way of\n"
      "naming the shards. Raises xpscale.DataError naming the URL at fault.");

  py::class_<PyLoader>(m, "_Loader", "One rank's (or one worker's) C++ ShardedLoader.")
      .def(py::init([](const Dataset& dataset, int rank, int world_size, py::object sample_type,
                       std::uint64_t seed, bool shuffle_shards, std::uint64_t shuffle_buffer_bytes,
                       bool drop_last, const std::string& on_error, std::uint64_t global_batch,
                       int prefetch_threads, std::uint64_t max_bytes_in_flight,
                       std::string cache_dir, std::uint64_t cache_max_bytes, int worker,
                       int num_workers, std::uint64_t worker_block) {
             LoaderOptions o;
             o.seed = seed;
             o.shuffle_shards = shuffle_shards;
             o.shuffle_buffer_bytes = shuffle_buffer_bytes;
             o.drop_last = drop_last;
             if (on_error != "fail" && on_error != "skip")
               throw py::value_error("on_error must be 'fail' or 'skip', not '" + on_error + "'");
             o.on_error = on_error == "skip" ? OnError::kSkip : OnError::kFail;
             o.global_batch = global_batch;
             o.prefetch_threads = prefetch_threads;
             if (max_bytes_in_flight > 0) o.max_bytes_in_flight = max_bytes_in_flight;
             o.cache_dir = std::move(cache_dir);
             o.cache_max_bytes = cache_max_bytes;
             o.worker = worker;
             o.num_workers = num_workers;
             o.worker_block = worker_block;
             // xpscale.data makes a loader per epoch (and DataLoader workers
             // are made again each epoch): a read ahead would go unused.
             o.read_ahead_next_epoch = false;
             return new PyLoader(dataset, std::move(o), rank, world_size, std::move(sample_type));
           }),
           py::arg("dataset"), py::kw_only(), py::arg("rank"), py::arg("world_size"),
           py::arg("sample_type"), py::arg("seed"), py::arg("shuffle_shards"),
           py::arg("shuffle_buffer_bytes"), py::arg("drop_last"), py::arg("on_error"),
           py::arg("global_batch"), py::arg("prefetch_threads"), py::arg("max_bytes_in_flight"),
           py::arg("cache_dir"), py::arg("cache_max_bytes"), py::arg("worker"),
           py::arg("num_workers"), py::arg("worker_block"))
      .def("take", &PyLoader::take, py::arg("n"),
           "Up to n samples; [] when the epoch is over (the loader is then at the next one).")
      .def("take_batch", &PyLoader::take_batch, py::arg("n"), py::arg("specs"),
           "Up to n samples as arrays (see ShardedDataset.batched); None once the epoch is over.")
      .def("drain", &PyLoader::drain, py::arg("keys"),
           "(keys or [], stats): the rest of the epoch read by the C++ loader alone.")
      .def("state", &PyLoader::state, "The C++ LoaderState as JSON.")
      .def("restore", &PyLoader::restore, py::arg("state"))
      .def_property_readonly("samples_per_epoch", &PyLoader::samples_per_epoch)
      .def("remaining", &PyLoader::remaining,
           "Samples the rank still gets in the current epoch (before the first take).")
      .def("stats", &PyLoader::stats);
}

}  // namespace xpscale::python
