#pragma once

#include <string>
#include <vector>

#include "contrastive_cpu.h"

namespace mets {

template <class T> struct Kernels {
    double (*loss_forward)(const Operands<T>&, int64_t, bool, T*, T*, T*);
    double (*loss_backward)(const Operands<T>&, int64_t, bool, const T*, const T*, const T*, double,
                            T*, T*);
    void (*similarity_forward)(const Operands<T>&, T*);
    double (*similarity_backward)(const Operands<T>&, const T*, T*, T*);
};

// The kernels of the active instruction set.
template <class T> Kernels<T> kernels();

std::vector<std::string> available_isas();
const std::string& active_isa();
void set_isa(const std::string& isa);
bool openmp_enabled();
std::string join(const std::vector<std::string>& items);

}  // namespace mets
