/*
 * nd_dicom_image.c - one image for detection, PNG or DICOM alike
 * (nd_dicom_file.h): the file is recognised by its content ("DICM" after
 * the preamble, else PNG), a DICOM object gives its first frame (the
 * documented rule for detection, docs/dicom.md), and the image is put on
 * the model's grid when both the model and the object have one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_dicom_file.h"
#include "sd_file.h"
#include "sd_png.h"

int nd_image_read(const char *path, nd_image *im, sd_error *err)
{
    memset(im, 0, sizeof *im);
    FILE *f = NULL; /* regular files only: a FIFO named like an image must not block */
    int rc = sd_file_open(path, NULL, &f, err);
    if (rc)
        return rc;
    uint8_t head[132];
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    if (!nd_dicom_sniff(head, n))
        return sd_png_read_gray16(path, &im->pix, &im->w, &im->h, &im->depth, err);
    im->dicom = 1;
    rc = nd_dicom_load_image(path, 0, 0, &im->pix, &im->w, &im->h, &im->info, err);
    im->depth = im->info.bits_stored;
    return rc;
}

int nd_image_to_grid(nd_image *im, double mm, char *note, size_t notelen, sd_error *err)
{
    note[0] = '\0';
    if (!im->dicom)
        return 0;
    if (mm <= 0) {
        snprintf(note, notelen,
                 "the model records no grid: the image is used at its stored pixels");
        return 0;
    }
    if (im->info.spacing_kind == ND_DICOM_SPACING_NONE)
        return sd_error_set(err, SD_EFORMAT,
                            "the image has no Pixel Spacing or Imager Pixel Spacing, so it cannot "
                            "be put on the model's grid of %.4g mm per pixel",
                            mm);
    uint16_t *r = NULL;
    int w = 0, h = 0;
    int rc = nd_dicom_resample(im->pix, im->w, im->h, im->info.spacing, mm, &r, &w, &h, err);
    if (rc)
        return rc;
    snprintf(note, notelen, "resampled from %.4gx%.4g mm pixels (%dx%d) to the model's %.4g mm",
             im->info.spacing[1], im->info.spacing[0], im->w, im->h, mm);
    free(im->pix);
    im->pix = r;
    im->w = w;
    im->h = h;
    return 0;
}

void nd_image_free(nd_image *im)
{
    free(im->pix);
    memset(im, 0, sizeof *im);
}
