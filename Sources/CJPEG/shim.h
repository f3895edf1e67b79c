// libjpeg-turbo (Debian's libjpeg62-turbo-dev). jpeglib.h uses FILE and size_t without
// including their headers, so stdio.h must come first.
#include <stdio.h>
#include <jpeglib.h>
#include <jerror.h>
