"""MkDocs hook: adds the pages generated from the code (:mod:`vaelab.docsite`) to the site at build time, and the
stylesheet that colours its code (the theme's own highlighter would load from a CDN: the site needs no network)."""

from mkdocs.structure.files import File
from pygments.formatters import HtmlFormatter

from vaelab.docsite import pages, plain_roles


def on_files(files, config):
    for path, markdown in pages().items():
        files.append(File.generated(config, path, content=markdown))
    files.append(File.generated(config, "css/pygments.css", content=HtmlFormatter(style="friendly").get_style_defs(".highlight")))
    return files


def on_page_content(html, page, config, files):
    return plain_roles(html)
