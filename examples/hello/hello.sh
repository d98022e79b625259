#!/bin/sh
echo "$GREETING (version $APP_VERSION)"
echo "words in the image: $(cat /app/build-info)"
[ -f /app/note.txt ] && cat /app/note.txt
exit 0
