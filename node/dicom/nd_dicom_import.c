/*
 * nd_dicom_import.c - a folder (or list) of DICOM files and a labels CSV
 * made into a data set folder that every command reads (docs/dicom.md,
 * "Preparing a data set"): DIR/images/ID.png (the display values on the
 * data set's grid, 16-bit), DIR/masks/ID.png, DIR/labels.csv and
 * DIR/dicom.json (the grid).  `sldd dataset prepare --dicom` runs it and
 * then prepares DIR as usual, so patches, statistics and everything after
 * are the PNG path's, unchanged.
 *
 * The labels CSV names each object by file name (column `file`) or by SOP
 * Instance UID (column `sop_instance_uid`), with `label` and `split`.  Ids
 * in DIR are salted hashes of the SOP Instance UID (nd_dicom_local_id; the
 * salt is DIR/dicom-salt, made here, mode 0600): no attribute value is
 * written anywhere.  A multi-frame object gives one image per frame
 * (ID-f0001, ...), all with the object's label and split, so frames of
 * one object never straddle splits.
 *
 * The grid: with mm > 0 every image is resampled to mm per pixel (each must
 * then carry Pixel Spacing or Imager Pixel Spacing); without, every image
 * must already share one square spacing (used as it is) or all must lack
 * one (pixels as stored; dicom.json says the grid is unknown).  Any other
 * mix is refused, naming two files that differ.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nd_dicom_file.h"
#include "sb_parse.h"
#include "sd_csv.h"
#include "sd_png.h"

#define PATHLEN 4096

typedef struct import_row {
    char *key;
    int label, split_line;
    char split[8];
    int used;
} import_row;

typedef struct import_file {
    char *path;
    const char *base; /* inside path */
    nd_dicom_info info;
    int row;
    char id[40];
} import_file;

typedef struct import_ctx {
    const nd_dicom_import_opts *o;
    import_row *rows;
    int nrows, by_uid;
    int from_folder; /* SRC is a folder: files that are not DICOM are skipped */
    import_file *files;
    int nfiles;
    uint8_t salt[32];
    double mm; /* the grid; 0 unknown */
    nd_dicom_import_report *rep;
} import_ctx;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_file(import_ctx *c, const char *path, sd_error *err)
{
    import_file *nf = realloc(c->files, (size_t)(c->nfiles + 1) * sizeof *nf);
    if (!nf)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    c->files = nf;
    import_file *f = &c->files[c->nfiles];
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(path)))
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    const char *slash = strrchr(f->path, '/');
    f->base = slash ? slash + 1 : f->path;
    f->row = -1;
    c->nfiles++;
    return 0;
}

/* Every regular file directly in dir except labels.csv and dot files, in
 * name order. */
static int list_folder(import_ctx *c, const char *dir, sd_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return sd_error_set(err, SD_EIO, "%s: cannot open folder: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        char p[PATHLEN];
        struct stat st;
        if (e->d_name[0] == '.' || !strcasecmp(e->d_name, "labels.csv"))
            continue;
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p)
            rc = sd_error_set(err, SD_EINVAL, "%s: path too long", dir);
        else if (stat(p, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        char **nn = rc ? NULL : realloc(names, (size_t)(n + 1) * sizeof *nn);
        if (!rc && (!nn || !(nn[n] = strdup(p))))
            rc = sd_error_set(err, SD_ENOMEM, "out of memory");
        if (nn)
            names = nn, n += !rc;
    }
    closedir(d);
    if (!rc)
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        if (!rc)
            rc = add_file(c, names[i], err);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* A list file: one path a line, relative to the list's folder unless
 * absolute; blank lines and lines starting with '#' skipped. */
static int list_file(import_ctx *c, const char *list, sd_error *err)
{
    FILE *f = fopen(list, "r");
    if (!f)
        return sd_error_set(err, SD_EIO, "%s: cannot open: %s", list, strerror(errno));
    char line[PATHLEN], dir[PATHLEN], p[2 * PATHLEN];
    snprintf(dir, sizeof dir, "%s", list);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int rc = 0, lineno = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        snprintf(p, sizeof p, "%s%s%s", line[0] == '/' ? "" : dir, line[0] == '/' ? "" : "/", line);
        rc = add_file(c, p, err);
    }
    fclose(f);
    return rc;
}

static int find_column(char **f, int nf, const char *name)
{
    for (int i = 0; i < nf; i++)
        if (!strcasecmp(f[i], name))
            return i;
    return -1;
}

static int parse_rows(import_ctx *c, const char *csv, sd_error *err)
{
    sd_csv r;
    int rc = sd_csv_open(&r, csv, err);
    if (rc)
        return rc;
    char *f[SD_CSV_MAX_FIELDS];
    int nf = 0, line = 0;
    rc = sd_csv_next(&r, f, &nf, &line, err);
    if (rc <= 0) {
        sd_csv_close(&r);
        return rc < 0 ? rc : sd_error_set(err, SD_EFORMAT, "%s: empty file", csv);
    }
    int ck = find_column(f, nf, "file"), cl = find_column(f, nf, "label"),
        cs = find_column(f, nf, "split");
    if (ck < 0 && (ck = find_column(f, nf, "sop_instance_uid")) >= 0)
        c->by_uid = 1;
    if (ck < 0 || cl < 0 || cs < 0) {
        sd_csv_close(&r);
        return sd_error_set(err, SD_EFORMAT,
                            "%s line %d: the header needs label, split and file or "
                            "sop_instance_uid",
                            csv, line);
    }
    while ((rc = sd_csv_next(&r, f, &nf, &line, err)) == 1) {
        if (nf <= ck || nf <= cl || nf <= cs) {
            rc = sd_error_set(err, SD_EFORMAT, "%s line %d: too few fields", csv, line);
            break;
        }
        import_row *nr = realloc(c->rows, (size_t)(c->nrows + 1) * sizeof *nr);
        if (!nr || !(nr[c->nrows].key = strdup(f[ck]))) {
            if (nr)
                c->rows = nr;
            rc = sd_error_set(err, SD_ENOMEM, "out of memory");
            break;
        }
        c->rows = nr;
        import_row *row = &c->rows[c->nrows++];
        row->split_line = line;
        row->used = 0;
        if (strcmp(f[cl], "0") && strcmp(f[cl], "1")) {
            rc = sd_error_set(err, SD_EFORMAT, "%s line %d: label is not 0 or 1", csv, line);
            break;
        }
        row->label = f[cl][0] - '0';
        snprintf(row->split, sizeof row->split, "%s", f[cs]);
    }
    sd_csv_close(&r);
    return rc < 0 ? rc : 0;
}

/* DIR/dicom-salt: 32 random bytes, made once. */
static int load_salt(import_ctx *c, sd_error *err)
{
    char p[PATHLEN];
    snprintf(p, sizeof p, "%s/dicom-salt", c->o->out_dir);
    FILE *f = fopen(p, "rb");
    if (f) {
        size_t n = fread(c->salt, 1, sizeof c->salt, f);
        fclose(f);
        if (n != sizeof c->salt)
            return sd_error_set(err, SD_EFORMAT, "%s: not 32 bytes; remove it to make a new one",
                                p);
        return 0;
    }
    if (RAND_bytes(c->salt, (int)sizeof c->salt) != 1)
        return sd_error_set(err, SD_EBACKEND, "random salt: RAND_bytes failed (OpenSSL)");
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return sd_error_set(err, SD_EIO, "%s: cannot create: %s", p, strerror(errno));
    ssize_t w = write(fd, c->salt, sizeof c->salt);
    int ok = w == (ssize_t)sizeof c->salt && fsync(fd) == 0;
    if (close(fd) != 0 || !ok)
        return sd_error_set(err, SD_EIO, "%s: cannot write", p);
    return 0;
}

/* Probe every file, give it its row and local id. */
static int probe_files(import_ctx *c, sd_error *err)
{
    const char **keys = malloc((size_t)(c->nrows ? c->nrows : 1) * sizeof *keys);
    if (!keys)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    for (int i = 0; i < c->nrows; i++)
        keys[i] = c->rows[i].key;
    int rc = 0;
    for (int i = 0; !rc && i < c->nfiles; i++) {
        import_file *f = &c->files[i];
        uint8_t *buf = NULL;
        size_t len = 0;
        rc = nd_dicom_file_read(f->path, NULL, &buf, &len, err);
        if (!rc && !nd_dicom_sniff(buf, len) && c->from_folder) {
            c->rep->skipped++; /* a README or the like in the folder */
            f->row = -2;
            free(buf);
            continue;
        }
        if (!rc)
            rc = nd_dicom_probe(buf, len, f->path, &f->info, err);
        if (!rc)
            rc = nd_dicom_local_id(buf, len, f->path, c->salt, sizeof c->salt, f->id, sizeof f->id,
                                   err);
        if (!rc && c->by_uid) {
            rc = nd_dicom_uid_find(buf, len, f->path, keys, c->nrows, &f->row, err);
        } else if (!rc) {
            for (int r = 0; r < c->nrows && f->row < 0; r++)
                if (!strcmp(c->rows[r].key, f->base))
                    f->row = r;
        }
        free(buf);
        if (!rc && f->row < 0)
            rc = sd_error_set(err, SD_EFORMAT, "%s: no row in the labels CSV (keyed by %s)",
                              f->path, c->by_uid ? "SOP Instance UID" : "file name");
        if (!rc && c->rows[f->row].used++)
            rc = sd_error_set(err, SD_EFORMAT, "%s: labels CSV line %d names a second object",
                              f->path, c->rows[f->row].split_line);
    }
    free(keys);
    for (int r = 0; !rc && r < c->nrows; r++)
        if (!c->rows[r].used)
            rc = sd_error_set(err, SD_EFORMAT, "labels CSV line %d: no DICOM file for this row%s",
                              c->rows[r].split_line,
                              c->by_uid ? " (no object has that SOP Instance UID)" : "");
    return rc;
}

static int same_spacing(const nd_dicom_info *a, const nd_dicom_info *b)
{
    return fabs(a->spacing[0] - b->spacing[0]) <= 1e-6 * a->spacing[0] &&
           fabs(a->spacing[1] - b->spacing[1]) <= 1e-6 * a->spacing[1];
}

/* The data set's grid (see the header comment). */
static int choose_grid(import_ctx *c, sd_error *err)
{
    const import_file *first = NULL;
    for (int i = 0; i < c->nfiles; i++) {
        const import_file *f = &c->files[i];
        if (f->row < 0)
            continue;
        int has = f->info.spacing_kind != ND_DICOM_SPACING_NONE;
        if (c->o->mm > 0 && !has)
            return sd_error_set(err, SD_EFORMAT,
                                "%s: no Pixel Spacing or Imager Pixel Spacing, so it cannot be "
                                "put on the %.4g mm grid",
                                f->path, c->o->mm);
        if (c->o->mm > 0)
            continue;
        if (!first) {
            first = f;
            continue;
        }
        int fhas = first->info.spacing_kind != ND_DICOM_SPACING_NONE;
        if (has != fhas || (has && !same_spacing(&f->info, &first->info)))
            return sd_error_set(
                err, SD_EFORMAT,
                "%s has %.4gx%.4g mm pixels but %s has %.4gx%.4g (0: none): the images are on "
                "different grids; give --mm-per-pixel to resample them all to one",
                first->path, first->info.spacing[1], first->info.spacing[0], f->path,
                f->info.spacing[1], f->info.spacing[0]);
    }
    if (c->o->mm > 0) {
        c->mm = c->o->mm;
    } else if (first && first->info.spacing_kind != ND_DICOM_SPACING_NONE) {
        if (!same_spacing(&first->info, &(nd_dicom_info){.spacing = {first->info.spacing[1],
                                                                     first->info.spacing[0]}}))
            return sd_error_set(err, SD_EFORMAT,
                                "%s: pixels are %.4g mm wide and %.4g mm high; give "
                                "--mm-per-pixel to resample them to square pixels",
                                first->path, first->info.spacing[1], first->info.spacing[0]);
        c->mm = first->info.spacing[0];
    }
    return 0;
}

static int needs_resample(const import_ctx *c, const nd_dicom_info *in)
{
    nd_dicom_info grid = {.spacing = {c->mm, c->mm}};
    return c->o->mm > 0 && !same_spacing(&grid, in);
}

/* The mask of frame k of f, if there is one: masks/STEM-fNNNN.png for a
 * multi-frame object, else masks/STEM.png (STEM: the file name without a
 * .dcm ending).  *found 0 when there is none. */
static int mask_path(const import_ctx *c, const import_file *f, int k, char *p, size_t plen,
                     int *found)
{
    char stem[256];
    snprintf(stem, sizeof stem, "%s", f->base);
    size_t sl = strlen(stem);
    if (sl > 4 && !strcasecmp(stem + sl - 4, ".dcm"))
        stem[sl - 4] = '\0';
    *found = 0;
    if (f->info.frames > 1) {
        snprintf(p, plen, "%s/%s-f%04d.png", c->o->masks, stem, k + 1);
        if (access(p, F_OK) == 0)
            return *found = 1;
    }
    snprintf(p, plen, "%s/%s.png", c->o->masks, stem);
    *found = access(p, F_OK) == 0;
    return *found;
}

static int write_mask(const import_ctx *c, const import_file *f, int k, const char *id,
                      sd_error *err)
{
    char mp[PATHLEN], out[PATHLEN];
    int found = 0;
    if (!c->o->masks || !mask_path(c, f, k, mp, sizeof mp, &found))
        return 0;
    uint16_t *m = NULL, *r = NULL;
    int w = 0, h = 0, rw = f->info.w, rh = f->info.h;
    int rc = sd_png_read_gray16(mp, &m, &w, &h, NULL, err);
    if (!rc && (w != f->info.w || h != f->info.h))
        rc = sd_error_set(err, SD_EFORMAT, "%s: mask is %dx%d but the image %s is %dx%d", mp, w, h,
                          f->path, f->info.w, f->info.h);
    for (size_t p = 0; !rc && p < (size_t)w * h; p++)
        m[p] = m[p] ? 65535 : 0;
    if (!rc && needs_resample(c, &f->info))
        rc = nd_dicom_resample(m, w, h, f->info.spacing, c->mm, &r, &rw, &rh, err);
    uint8_t *b = rc ? NULL : malloc((size_t)rw * rh);
    if (!rc && !b)
        rc = sd_error_set(err, SD_ENOMEM, "out of memory");
    for (size_t p = 0; !rc && p < (size_t)rw * rh; p++)
        b[p] = (r ? r : m)[p] >= 32768 ? 255 : 0;
    snprintf(out, sizeof out, "%s/masks/%s.png", c->o->out_dir, id);
    if (!rc)
        rc = sd_png_write(out, b, rw, rh, 1, err);
    free(m), free(r), free(b);
    c->rep->with_mask += !rc;
    return rc;
}

/* Decode, resample and write every frame of f. */
static int convert_file(import_ctx *c, import_file *f, FILE *labels, sd_error *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = nd_dicom_file_read(f->path, NULL, &buf, &len, err);
    for (int k = 0; !rc && k < f->info.frames; k++) {
        char id[64], out[PATHLEN];
        if (f->info.frames > 1)
            snprintf(id, sizeof id, "%s-f%04d", f->id, k + 1);
        else
            snprintf(id, sizeof id, "%s", f->id);
        uint16_t *pix = NULL, *r = NULL;
        nd_dicom_info info;
        int w = f->info.w, h = f->info.h;
        rc = nd_dicom_read_frame(buf, len, f->path, k, &pix, &info, err);
        if (!rc && needs_resample(c, &f->info))
            rc = nd_dicom_resample(pix, f->info.w, f->info.h, f->info.spacing, c->mm, &r, &w, &h,
                                   err);
        snprintf(out, sizeof out, "%s/images/%s.png", c->o->out_dir, id);
        if (!rc)
            rc = sd_png_write_gray16(out, r ? r : pix, w, h, err);
        free(pix), free(r);
        if (!rc)
            rc = write_mask(c, f, k, id, err);
        const import_row *row = &c->rows[f->row];
        if (!rc && fprintf(labels, "%s,%d,%s\n", id, row->label, row->split) < 0)
            rc = sd_error_set(err, SD_EIO, "labels.csv: write failed");
        c->rep->images += !rc;
    }
    free(buf);
    c->rep->objects += !rc;
    return rc;
}

static int make_dirs(const char *out, sd_error *err)
{
    char p[PATHLEN];
    const char *sub[3] = {"", "/images", "/masks"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", out, sub[i]);
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return sd_error_set(err, SD_EIO, "%s: cannot create: %s", p, strerror(errno));
    }
    char lp[PATHLEN], jp[PATHLEN];
    snprintf(lp, sizeof lp, "%s/labels.csv", out);
    snprintf(jp, sizeof jp, "%s/dicom.json", out);
    if (access(lp, F_OK) == 0 && access(jp, F_OK) != 0)
        return sd_error_set(err, SD_EINVAL,
                            "%s: already holds a data set that was not made from DICOM; give an "
                            "empty or new folder",
                            out);
    return 0;
}

/* labels.csv and dicom.json, each written whole then renamed. */
static int convert_all(import_ctx *c, sd_error *err)
{
    char tmp[PATHLEN], fin[PATHLEN];
    snprintf(tmp, sizeof tmp, "%s/labels.csv.tmp", c->o->out_dir);
    snprintf(fin, sizeof fin, "%s/labels.csv", c->o->out_dir);
    FILE *l = fopen(tmp, "w");
    if (!l)
        return sd_error_set(err, SD_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    int rc = fputs("id,label,split\n", l) < 0 ? sd_error_set(err, SD_EIO, "write failed") : 0;
    for (int i = 0; !rc && i < c->nfiles; i++)
        if (c->files[i].row >= 0)
            rc = convert_file(c, &c->files[i], l, err);
    if (fclose(l) != 0 && !rc)
        rc = sd_error_set(err, SD_EIO, "%s: write failed", tmp);
    if (!rc && rename(tmp, fin) != 0)
        rc = sd_error_set(err, SD_EIO, "%s: cannot rename: %s", fin, strerror(errno));
    if (rc)
        return rc;
    snprintf(tmp, sizeof tmp, "%s/dicom.json.tmp", c->o->out_dir);
    snprintf(fin, sizeof fin, "%s/dicom.json", c->o->out_dir);
    FILE *j = fopen(tmp, "w");
    if (!j)
        return sd_error_set(err, SD_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    fprintf(j,
            "{\n  \"format\": \"sldd-dicom-import\",\n  \"version\": 1,\n"
            "  \"mm_per_pixel\": %.17g,\n  \"objects\": %d,\n  \"images\": %d\n}\n",
            c->mm, c->rep->objects, c->rep->images);
    if (fclose(j) != 0 || rename(tmp, fin) != 0)
        return sd_error_set(err, SD_EIO, "%s: write failed", fin);
    return 0;
}

int nd_dicom_import(const nd_dicom_import_opts *o, nd_dicom_import_report *rep, sd_error *err)
{
    memset(rep, 0, sizeof *rep);
    if (!nd_dicom_available())
        return sd_error_set(err, SD_EUNSUPPORTED,
                            "%s: this sldd was built without DICOM support (install "
                            "libdcmtk-dev and rebuild)",
                            o->src);
    import_ctx c = {.o = o, .rep = rep};
    nd_dicom_import_opts local = *o;
    char labels[PATHLEN + 16], masks[PATHLEN + 16];
    struct stat st;
    if (stat(o->src, &st) != 0)
        return sd_error_set(err, SD_EIO, "%s: %s", o->src, strerror(errno));
    c.from_folder = S_ISDIR(st.st_mode);
    const char *base = c.from_folder ? o->src : ".";
    char listdir[PATHLEN];
    if (!c.from_folder) {
        snprintf(listdir, sizeof listdir, "%s", o->src);
        char *s = strrchr(listdir, '/');
        if (s)
            *s = '\0', base = listdir;
    }
    if (!local.labels) {
        snprintf(labels, sizeof labels, "%s/labels.csv", base);
        local.labels = labels;
    }
    if (!local.masks) {
        snprintf(masks, sizeof masks, "%s/masks", base);
        local.masks = access(masks, F_OK) == 0 ? masks : NULL;
    }
    c.o = &local;
    int rc = make_dirs(o->out_dir, err);
    if (!rc)
        rc = c.from_folder ? list_folder(&c, o->src, err) : list_file(&c, o->src, err);
    if (!rc)
        rc = parse_rows(&c, local.labels, err);
    if (!rc)
        rc = load_salt(&c, err);
    if (!rc)
        rc = probe_files(&c, err);
    if (!rc && rep->skipped == c.nfiles)
        rc = sd_error_set(err, SD_EFORMAT, "%s: no DICOM file", o->src);
    if (!rc)
        rc = choose_grid(&c, err);
    if (!rc)
        rc = convert_all(&c, err);
    rep->mm = c.mm;
    OPENSSL_cleanse(c.salt, sizeof c.salt);
    for (int i = 0; i < c.nrows; i++)
        free(c.rows[i].key);
    for (int i = 0; i < c.nfiles; i++)
        free(c.files[i].path);
    free(c.rows);
    free(c.files);
    return rc;
}

int nd_dicom_grid_read(const char *dir, double *mm, sd_error *err)
{
    char p[PATHLEN], buf[512];
    *mm = 0;
    snprintf(p, sizeof p, "%s/dicom.json", dir);
    FILE *f = fopen(p, "r");
    if (!f)
        return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *k = strstr(buf, "\"mm_per_pixel\":");
    const char *end = NULL;
    if (!k || sb_parse_double_prefix(k + 15 + strspn(k + 15, " "), mm, &end) || !(*mm >= 0))
        return sd_error_set(err, SD_EFORMAT, "%s: no readable mm_per_pixel", p);
    return 0;
}
