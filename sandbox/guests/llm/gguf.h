// A GGUF v3 reader that trusts nothing: every count, length, type, dimension and offset is
// checked against fixed bounds and the file's size before it is used, and any failure is a
// message (gguf_error) rather than a crash. Reads with read/lseek only (no mmap, no pread).
#ifndef LLM_GGUF_H
#define LLM_GGUF_H
#include <stddef.h>
#include <stdint.h>

// Metadata value types, as GGUF numbers them.
enum {
    GGUF_U8, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL,
    GGUF_STRING, GGUF_ARRAY, GGUF_U64, GGUF_I64, GGUF_F64
};

typedef struct {
    const char *s;  // not NUL-terminated inside arrays; keys and scalar strings are
    uint32_t len;
} gguf_str;

typedef struct {
    char *key;
    uint32_t type;       // GGUF_*
    uint32_t elem_type;  // for arrays
    uint64_t count;      // for arrays
    union {
        uint64_t u;
        int64_t i;
        double f;
    } num;                // scalars (bool and integers in u/i, floats in f)
    gguf_str str;         // GGUF_STRING
    gguf_str *strs;       // arrays of strings
    void *data;           // arrays of numbers, little-endian as in the file
} gguf_kv;

typedef struct {
    char *name;
    uint32_t n_dims;
    uint64_t dims[4];   // dims[0] is the contiguous one (columns)
    uint32_t type;      // 0 F32, 3 Q4_1, 8 Q8_0: the only ones accepted
    uint64_t offset;    // absolute offset in the file
    uint64_t bytes;
} gguf_tensor;

typedef struct {
    int fd;
    uint64_t file_size;
    uint64_t data_start;  // where tensor data begins (aligned)
    uint32_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tensor *tensors;
} gguf_file;

// Parses the header of the file open on fd. Returns 0, or -1 with the reason in gguf_error.
int gguf_open(gguf_file *g, int fd);
extern char gguf_error[256];

const gguf_kv *gguf_find(const gguf_file *g, const char *key);
const gguf_tensor *gguf_tensor_find(const gguf_file *g, const char *name);
// Reads bytes [off, off + n) of the file; 0 or -1.
int gguf_read_at(int fd, uint64_t off, void *buf, size_t n);
#endif
