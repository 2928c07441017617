// Package web is the clerk's counter page that posd serves at /: plain HTML, CSS and
// JavaScript embedded in the binary (no CDN, no network, no build step). The page
// signs in with a clerk PIN or a token (the API sets an HttpOnly session cookie; the
// page never sees or stores a token), takes the amount on a keypad in minor units,
// starts customer- or merchant-presented sales, follows them by Server-Sent Events
// (GET /v1/events), and offers reprint, cancel, refund, the batch close with its Z
// report and today's sales, in English, Korean, Japanese and Chinese. docs/clerk.md
// is the clerk's guide.
//
// The page holds no data itself: every fact on it comes from the API, under the same
// guard as a register's calls.
package web
