// Lists /input with opendir/readdir, stats each file, reads it with stdio, and writes a
// summary to /output/summary; exercises the WASI calls wasi-libc makes for files.
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int main(int argc, char **argv) {
    DIR *d = opendir("/input");
    if (!d) { perror("opendir"); return 2; }
    FILE *out = fopen("/output/summary", "w");
    if (!out) { perror("fopen /output/summary"); return 3; }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300];
        snprintf(path, sizeof path, "/input/%s", e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) { perror("stat"); return 4; }
        FILE *f = fopen(path, "r");
        if (!f) { perror("fopen"); return 5; }
        int c, sum = 0;
        while ((c = fgetc(f)) != EOF) sum += c;
        fclose(f);
        printf("%s %lld %d\n", e->d_name, (long long)st.st_size, sum);
        fprintf(out, "%s=%lld\n", e->d_name, (long long)st.st_size);
    }
    closedir(d);
    fclose(out);
    // The input directory is read-only and the output directory write-only.
    printf("write to input: %s\n", fopen("/input/new", "w") ? "allowed" : "refused");
    printf("read from output: %s\n", fopen("/output/summary", "r") ? "allowed" : "refused");
    // Time is virtual but moves forward.
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("clock moves: %s\n", (b.tv_sec > a.tv_sec || b.tv_nsec > a.tv_nsec) ? "yes" : "no");
    fprintf(stderr, "argv[0]=%s argc=%d\n", argv[0], argc);
    return 0;
}
