// Tries to read host files through libc; prints "<path> refused" for each refusal.
#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>

static void try_open(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        printf("%s refused\n", path);
        return;
    }
    char buf[64] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    printf("%s opened: %.*s\n", path, (int)n, buf);
    fclose(f);
}

int main(void) {
    try_open("/etc/passwd");
    try_open("/input/../../etc/passwd");
    try_open("/proc/self/environ");
    int fd = open("/output/../../tmp/x", O_WRONLY | O_CREAT, 0644);
    if (fd < 0) printf("/output/../../tmp/x refused\n"); else printf("created\n");
    return 0;
}
