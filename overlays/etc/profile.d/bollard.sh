# bollard node: a hint for whoever logs in on the console.
if [ -n "$PS1" ] && [ "$(id -u)" = 0 ]; then
  echo "bollard node $(hostname): 'bollard status', 'bollard --help'; 'exit' returns to the console."
fi
