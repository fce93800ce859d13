/* test_synth.c - being written. */
#include "../sd_test.h"
int main(void)
{
    return SD_TEST_SKIP;
}
