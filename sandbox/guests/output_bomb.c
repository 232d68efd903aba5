// Fills /output with files until the sandbox stops it.
#include <stdio.h>
#include <string.h>

int main(void) {
    static char block[65536];
    memset(block, 'x', sizeof block);
    for (int i = 0;; i++) {
        char name[64];
        snprintf(name, sizeof name, "/output/f%d", i % 8);
        FILE *f = fopen(name, "a");
        if (!f) return 2;
        fwrite(block, 1, sizeof block, f);
        fclose(f);
    }
}
