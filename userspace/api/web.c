// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * api/web.c - the approvals page, embedded in the binary.
 *
 * web/index.html, web/app.css, web/app.js and web/icon.svg are assembled
 * into read-only data (.incbin, paths relative to the source tree, where
 * make runs the compiler; the Makefile names them as prerequisites of this
 * object).  Nothing is read from disk at run time and nothing is fetched
 * from elsewhere: the page's Content-Security-Policy allows only these.
 */
#include <string.h>

#include "api/internal.h"
#include "common.h"

#define KG_ASSET(sym, file)							\
	__asm__(".pushsection .rodata\n"					\
		".global " #sym "\n.hidden " #sym "\n.balign 16\n"		\
		#sym ":\n.incbin \"" file "\"\n"				\
		".global " #sym "_end\n.hidden " #sym "_end\n"		\
		#sym "_end:\n.byte 0\n.popsection\n");			\
	extern const char sym[], sym##_end[]

KG_ASSET(kg_web_index, "web/index.html");
KG_ASSET(kg_web_css, "web/app.css");
KG_ASSET(kg_web_js, "web/app.js");
KG_ASSET(kg_web_icon, "web/icon.svg");

bool kg_web_asset(const char *path, const void **data, size_t *len, const char **type)
{
	static const struct {
		const char *path, *type;
		const char *start, *end;
	} assets[] = {
		{ "/", "text/html; charset=utf-8", kg_web_index, kg_web_index_end },
		{ "/static/app.css", "text/css; charset=utf-8", kg_web_css, kg_web_css_end },
		{ "/static/app.js", "text/javascript; charset=utf-8", kg_web_js, kg_web_js_end },
		{ "/static/icon.svg", "image/svg+xml", kg_web_icon, kg_web_icon_end },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(assets); i++)
		if (!strcmp(path, assets[i].path)) {
			*data = assets[i].start;
			*len = (size_t)(assets[i].end - assets[i].start);
			*type = assets[i].type;
			return true;
		}
	return false;
}
