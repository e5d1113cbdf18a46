#!/bin/sh
# Writes the man page of one sub-command, pixmend-CMD(1), gzipped, from
# `pixmend CMD --help`: the usage lines become SYNOPSIS, the rest DESCRIPTION
# (kept as the program lays it out).
#   usage: help2man.sh PIXMEND CMD VERSION OUT.1.gz
set -eu
pixmend=$1 cmd=$2 version=$3 out=$4
help=$("$pixmend" "$cmd" --help)
summary=$("$pixmend" --help | sed -n "s/^  $cmd  *//p")
# roff: a backslash is \e; a line starting with . or ' must not be read as a request.
esc() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }
{
    echo ".TH PIXMEND-$(echo "$cmd" | tr '[:lower:]' '[:upper:]') 1 \"\" \"pixmend $version\" \"pixmend manual\""
    echo ".SH NAME"
    printf 'pixmend-%s \\- %s\n' "$cmd" "$(echo "$summary" | esc)"
    echo ".SH SYNOPSIS"
    echo ".nf"
    printf '%s\n' "$help" | sed -n '/^usage:/,/^$/p' | sed -e 's/^usage: *//' -e 's/^       //' -e '/^$/d' | esc
    echo ".fi"
    echo ".SH DESCRIPTION"
    echo ".nf"
    printf '%s\n' "$help" | sed '1,/^$/d' | esc
    echo ".fi"
    echo ".SH SEE ALSO"
    echo ".BR pixmend (1)"
} | gzip -9n >"$out"
