// A C++ program for wasm32-wasi (libc++, no exceptions): templates, virtual calls
// (call_indirect through the vtable), standard containers and algorithms, std::string and
// std::function. Its output must match the same source built natively.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

uint32_t seed = 2463534242u;

uint32_t next_random() {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    return seed;
}

struct Shape {
    virtual ~Shape() = default;
    virtual double area() const = 0;
    virtual std::string name() const = 0;
};

struct Rect final : Shape {
    double w, h;
    Rect(double w, double h) : w(w), h(h) {}
    double area() const override { return w * h; }
    std::string name() const override { return "rect"; }
};

struct Circle final : Shape {
    double r;
    explicit Circle(double r) : r(r) {}
    double area() const override { return 3.14159265358979 * r * r; }
    std::string name() const override { return "circle"; }
};

struct Triangle final : Shape {
    double b, h;
    Triangle(double b, double h) : b(b), h(h) {}
    double area() const override { return 0.5 * b * h; }
    std::string name() const override { return "triangle"; }
};

template <typename T>
T checksum(const std::vector<T> &values) {
    return std::accumulate(values.begin(), values.end(), T{},
                           [](T acc, T v) { return acc * 31 + v; });
}

}  // namespace

int main() {
    std::vector<std::unique_ptr<Shape>> shapes;
    for (int i = 0; i < 300; i++) {
        double a = (next_random() % 1000) / 10.0, b = (next_random() % 1000) / 10.0;
        switch (next_random() % 3) {
            case 0: shapes.push_back(std::make_unique<Rect>(a, b)); break;
            case 1: shapes.push_back(std::make_unique<Circle>(a)); break;
            default: shapes.push_back(std::make_unique<Triangle>(a, b)); break;
        }
    }
    std::map<std::string, double> by_kind;
    for (const auto &s : shapes) by_kind[s->name()] += s->area();
    for (const auto &[kind, area] : by_kind) std::printf("%s: %.3f\n", kind.c_str(), area);

    std::stable_sort(shapes.begin(), shapes.end(),
                     [](const auto &x, const auto &y) { return x->area() < y->area(); });
    std::printf("smallest %s %.3f, largest %s %.3f\n", shapes.front()->name().c_str(),
                shapes.front()->area(), shapes.back()->name().c_str(), shapes.back()->area());

    std::vector<uint64_t> numbers(5000);
    for (auto &n : numbers) n = next_random() % 100000;
    std::sort(numbers.begin(), numbers.end());
    numbers.erase(std::unique(numbers.begin(), numbers.end()), numbers.end());
    std::printf("unique %zu checksum %llu\n", numbers.size(),
                static_cast<unsigned long long>(checksum(numbers)));

    std::unordered_map<std::string, int> words;
    std::string text;
    for (int i = 0; i < 2000; i++) {
        std::string word;
        int len = 1 + next_random() % 3;
        for (int k = 0; k < len; k++) word.push_back(static_cast<char>('a' + next_random() % 4));
        words[word]++;
        text += word;
        text += ' ';
    }
    std::vector<std::pair<std::string, int>> counts(words.begin(), words.end());
    std::sort(counts.begin(), counts.end(), [](const auto &x, const auto &y) {
        return x.second != y.second ? x.second > y.second : x.first < y.first;
    });
    for (size_t i = 0; i < 5; i++)
        std::printf("%s=%d ", counts[i].first.c_str(), counts[i].second);
    std::printf("\ntext %zu bytes, 'abc' at %zu\n", text.size(), text.find("abc"));

    std::vector<std::function<int64_t(int64_t)>> pipeline = {
        [](int64_t x) { return x * 3; },
        [](int64_t x) { return x - 7; },
        [](int64_t x) { return x ^ (x >> 3); },
    };
    int64_t value = 1;
    for (int i = 0; i < 40; i++) value = pipeline[i % pipeline.size()](value);
    std::printf("pipeline %lld\n", static_cast<long long>(value));
    return 0;
}
