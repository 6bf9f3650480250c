// Run-time choice of the CPU kernels' instruction set: the widest one this CPU runs, unless the
// caller (or METS_FAST_CPU_ISA) asks for a narrower one.
#include "dispatch.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace mets {

namespace {

bool cpu_has(const char* isa) {
#if defined(METS_HAVE_AVX512) || defined(METS_HAVE_AVX2)
    if (std::strcmp(isa, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
    if (std::strcmp(isa, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return std::strcmp(isa, "portable") == 0;
}

bool isa_built(const char* isa) {
#ifdef METS_HAVE_AVX512
    if (std::strcmp(isa, "avx512") == 0) return true;
#endif
#ifdef METS_HAVE_AVX2
    if (std::strcmp(isa, "avx2") == 0) return true;
#endif
    return std::strcmp(isa, "portable") == 0;
}

const char* const kOrder[] = {"avx512", "avx2", "portable"};

std::string& current() {
    static std::string isa = [] {
        const char* forced = std::getenv("METS_FAST_CPU_ISA");
        if (forced && *forced) {
            if (!isa_built(forced) || !cpu_has(forced))
                throw std::invalid_argument(std::string("METS_FAST_CPU_ISA=") + forced +
                                            " is not available here; choose one of: " +
                                            join(available_isas()));
            return std::string(forced);
        }
        for (const char* isa : kOrder)
            if (isa_built(isa) && cpu_has(isa)) return std::string(isa);
        return std::string("portable");
    }();
    return isa;
}

}  // namespace

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
    return out;
}

std::vector<std::string> available_isas() {
    std::vector<std::string> out;
    for (const char* isa : kOrder)
        if (isa_built(isa) && cpu_has(isa)) out.emplace_back(isa);
    return out;
}

const std::string& active_isa() { return current(); }

void set_isa(const std::string& isa) {
    if (!isa_built(isa.c_str()) || !cpu_has(isa.c_str()))
        throw std::invalid_argument("instruction set '" + isa +
                                    "' is not available here; choose one of: " +
                                    join(available_isas()));
    current() = isa;
}

template <class T> Kernels<T> kernels() {
    const std::string& isa = current();
#ifdef METS_HAVE_AVX512
    if (isa == "avx512")
        return {avx512::loss_forward<T>, avx512::loss_backward<T>, avx512::similarity_forward<T>,
                avx512::similarity_backward<T>};
#endif
#ifdef METS_HAVE_AVX2
    if (isa == "avx2")
        return {avx2::loss_forward<T>, avx2::loss_backward<T>, avx2::similarity_forward<T>,
                avx2::similarity_backward<T>};
#endif
    (void)isa;
    return {portable::loss_forward<T>, portable::loss_backward<T>,
            portable::similarity_forward<T>, portable::similarity_backward<T>};
}

template Kernels<float> kernels<float>();
template Kernels<double> kernels<double>();

bool openmp_enabled() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

}  // namespace mets
